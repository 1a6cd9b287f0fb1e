from pathlib import Path

import pytest
import yaml

from sempos.config import check_method_graph, deep_merge, digest, load_params, method_settings, validate
from sempos.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_default_and_overlays_validate():
    load_params(REPO / "params.yaml")
    for overlay in sorted((REPO / "config").glob("*.yaml")):
        load_params(REPO / "params.yaml", [overlay])


@pytest.mark.parametrize(
    "patch,needle",
    [
        ({"pretrain": {"epochs": -1}}, "pretrain.epochs"),
        ({"pretrain": {"optimiser": "sgd"}}, "unknown key"),
        ({"methods": {"simclr": {"algo": "simclr", "temprature": 0.2}}}, "methods.simclr"),
        ({"methods": {"bad": {"algo": "nope"}}}, "methods.bad.algo"),
        ({"augment": {"flip_p": 1.5}}, "augment.flip_p"),
        ({"runtime": {"device": "tpu"}}, "runtime.device"),
        ({"seeds": []}, "seeds"),
    ],
)
def test_bad_params_name_the_key(patch, needle):
    with pytest.raises(ConfigError) as err:
        validate(deep_merge(params(), patch))
    assert needle in str(err.value)


def test_algo_specific_keys_are_checked():
    p = deep_merge(params(), {"methods": {"simclr": {"algo": "simclr", "queue_size": 10}}})
    with pytest.raises(ConfigError, match="queue_size"):
        validate(p)


def test_baseline_must_be_a_method():
    p = deep_merge(params(), {"report": {"baseline": "ghost"}})
    with pytest.raises(ConfigError, match="report.baseline"):
        validate(p)


def test_unknown_method_and_missing_file():
    with pytest.raises(ConfigError, match="unknown method"):
        method_settings(params(), "ghost")
    with pytest.raises(ConfigError, match="does not exist"):
        load_params("/nonexistent/params.yaml")


def test_method_overrides_merge_into_shared_sections():
    p = deep_merge(params(), {"methods": {"simclr": {"algo": "simclr", "pretrain": {"epochs": 7}}}})
    validate(p)
    s = method_settings(p, "simclr")
    assert s["pretrain"]["epochs"] == 7
    assert s["pretrain"]["batch_size"] == p["pretrain"]["batch_size"]
    assert "pretrain" not in s["hp"]


def test_semisup_fractions_must_be_prepared():
    p = deep_merge(params(), {"data": {"semi_fractions": [1]}})  # the default fine-tunes on 10 %
    with pytest.raises(ConfigError, match="data.semi_fractions"):
        validate(p)


def test_unknown_names_in_lists_are_errors_naming_the_key():
    p = deep_merge(params(), {"eval": {"detection": {"methods": ["simclr", "simclrr"]}}})
    with pytest.raises(ConfigError, match=r"eval.detection.methods \['simclrr'\] are not methods"):
        validate(p)
    p = deep_merge(params(), {"eval": {"transfer": {"targets": ["digitz"]}}})
    with pytest.raises(ConfigError, match=r"eval.transfer.targets.0: 'digitz' is not one of"):
        validate(p)
    p = deep_merge(params(), {"eval": {"semisup": {"epochs": {"1%": 3}}}})
    with pytest.raises(ConfigError, match="eval.semisup.epochs"):
        validate(p)
    p = deep_merge(params(), {"methods": {"simclr_sepp": {"positives": {"from": "simclrr"}}}})
    with pytest.raises(ConfigError, match=r"methods.simclr_sepp.positives.from 'simclrr' is not a method"):
        validate(p)


def test_algo_key_errors_say_which_algo_takes_what():
    p = deep_merge(params(), {"methods": {"simclr": {"bank_size": 10}}})
    with pytest.raises(ConfigError) as err:
        validate(p)
    assert "methods.simclr: 'bank_size' is not a parameter of algo 'simclr'" in str(err.value)
    assert "'temperature'" in str(err.value)


def test_method_settings_resolve_every_section():
    p = deep_merge(params(), {"methods": {"simclr": {"algo": "simclr", "temperature": 0.3,
                                                     "augment": {"flip_p": 0.0}, "pretrain": {"epochs": 2}}}})
    validate(p)
    s = method_settings(p, "simclr")
    assert set(s) == {"name", "algo", "hp", "pretrain", "augment", "backbone"}
    assert (s["name"], s["algo"]) == ("simclr", "simclr")
    assert s["hp"] == {"algo": "simclr", "temperature": 0.3}  # the sections' overrides are not hyper-parameters
    assert s["augment"] == {**p["augment"], "flip_p": 0.0} and s["pretrain"]["epochs"] == 2
    assert s["backbone"] == p["backbone"] and s["backbone"] is not p["backbone"]
    plain = method_settings(p, "mocov2")
    assert plain["augment"] == p["augment"] and plain["pretrain"] == p["pretrain"]
    assert method_settings(p, "random_init")["hp"] == {"algo": "none"}  # its `seeds` pick runs, not a setting


def test_a_missing_top_level_section_is_reported_at_the_top_level():
    p = params()
    del p["methods"]
    with pytest.raises(ConfigError, match=r"\(top level\): 'methods' is a required property"):
        validate(p)


def test_load_params_reads_params_yaml_of_the_working_directory_by_default(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(deep_merge(params(), {"pretrain": {"epochs": 5}})))
    monkeypatch.chdir(tmp_path)
    assert load_params()["pretrain"]["epochs"] == 5


def test_an_invalid_merge_names_the_params_file_and_every_overlay(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(params()))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"seeds": [0]}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"pretrain": {"epochs": -1}}))
    with pytest.raises(ConfigError) as err:
        load_params(base, [tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert str(err.value).startswith(f"invalid {base} + {tmp_path / 'a.yaml'} + {tmp_path / 'b.yaml'}:\n"
                                     f"  pretrain.epochs: -1 ")
    with pytest.raises(ConfigError) as err:
        load_params(tmp_path / "b.yaml")  # not a whole params file
    assert str(err.value).startswith(f"invalid {tmp_path / 'b.yaml'}:\n")


def test_positives_without_a_source_are_augmented_pairs_which_have_no_partners():
    with pytest.raises(ConfigError) as err:
        check_method_graph({"h": {"algo": "simclr", "positives": {"variant": "M"}}}, "p.yaml")
    assert str(err.value) == ("invalid p.yaml: methods.h: positives.variant: M needs an extra pair list "
                              "(positives.source mined, oracle or random), not source augment")


def _error(p, *source) -> str:
    with pytest.raises(ConfigError) as err:
        validate(p, *source)
    return str(err.value)


def test_every_semantic_error_names_the_params_source():
    graph = deep_merge(params(), {"methods": {"h": {"algo": "simclr", "positives": {"source": "oracle", "from": "simclr"}}}})
    assert _error(graph, "x.yaml") == "invalid x.yaml: methods.h.positives.from only applies to mined sources"
    seeds = deep_merge(params(), {"seeds": [1]})  # random_init runs seed 0 only
    assert _error(seeds, "x.yaml").startswith("invalid x.yaml: methods.random_init.seeds [0] keeps none of the ")
    assert _error(deep_merge(params(), {"pretrain": {"epochs": -1}})).startswith("invalid params:\n  pretrain.epochs")


def test_both_partner_switches_are_named_together():
    both = {"variant": "M", "mask_partners": True}
    pairless = deep_merge(params(), {"methods": {"h": {"algo": "simclr", "positives": {"source": "augment", **both}}}})
    assert _error(pairless, "x.yaml") == (
        "invalid x.yaml: methods.h: positives.variant: M and positives.mask_partners: true needs an extra pair "
        "list (positives.source mined, oracle or random), not source augment")
    unable = deep_merge(params(), {"methods": {"h": {"algo": "byol", "positives": {"source": "oracle", **both}}}})
    assert _error(unable, "x.yaml") == (
        "invalid x.yaml: methods.h: algo 'byol' does not implement positives.variant: M and "
        "positives.mask_partners: true; drop it or choose an algo that does (implemented by: mocov2, simclr)")


def test_a_switch_no_algo_implements_gets_no_hint(monkeypatch):
    import sempos.config

    monkeypatch.setattr(sempos.config, "ALGO_SWITCHES", {"simclr": frozenset({"multi_positive"})})
    p = deep_merge(params(), {"methods": {"h": {"algo": "simclr",
                                                "positives": {"source": "oracle", "mask_partners": True}}}})
    assert _error(p, "x.yaml") == ("invalid x.yaml: methods.h: algo 'simclr' does not implement "
                                   "positives.mask_partners: true; drop it or choose an algo that does")


def test_semisup_needs_label_subsets_even_when_none_are_listed():
    p = params()
    del p["data"]["semi_fractions"]
    assert _error(p) == ("invalid params: eval.semisup.fractions [10] are not in data.semi_fractions []; add them "
                         "there so prepare writes those label subsets")


def test_schema_errors_list_the_first_ten():
    probs = ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")
    numbers = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs")
    lines = _error(deep_merge(params(), {"augment": dict.fromkeys(probs, "x"),
                                         "pretrain": dict.fromkeys(numbers, "x")})).splitlines()
    assert len(lines) == 1 + 10 and lines[-1] == "  pretrain.warmup_epochs: 'x' is not of type 'integer'"


def test_a_merge_shares_no_mutable_value_with_its_inputs():
    base, over = {"a": {"list": [1]}, "b": {"c": 1}}, {"b": {"d": {"list": [2]}}, "e": {"list": [3]}}
    merged = deep_merge(base, over)
    assert merged == {"a": {"list": [1]}, "b": {"c": 1, "d": {"list": [2]}}, "e": {"list": [3]}}
    merged["a"]["list"].append(0)
    merged["b"]["d"]["list"].append(0)
    merged["e"]["list"].append(0)
    assert base == {"a": {"list": [1]}, "b": {"c": 1}} and over == {"b": {"d": {"list": [2]}}, "e": {"list": [3]}}


def test_a_digest_is_the_sha256_prefix_of_the_key_sorted_json():
    import hashlib

    assert digest({"b": [1, 2], "a": {"y": 1, "x": None}}) == digest({"a": {"x": None, "y": 1}, "b": [1, 2]}) == \
        hashlib.sha256(b'{"a": {"x": null, "y": 1}, "b": [1, 2]}').hexdigest()[:16] == "8083169afea55476"
