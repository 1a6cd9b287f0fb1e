"""Per-method seeds, compute-matched controls, eval method selectors and removing a method in an overlay."""

from pathlib import Path

import pytest
import yaml

from sempos.config import deep_merge, drop_removed_methods, load_params, seeds_of, validate
from sempos.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def with_(patch):
    return drop_removed_methods(deep_merge(params(), patch))


def test_method_seeds_limit_the_global_seeds():
    p = with_({"seeds": [0, 1, 2], "methods": {"nnclr": {"seeds": [0, 2, 7]}}})
    validate(p)
    assert seeds_of(p, "nnclr") == [0, 2] and seeds_of(p, "simclr") == [0, 1, 2]
    one = with_({"seeds": [0]})  # an overlay with one seed runs every method once
    assert {m: seeds_of(one, m) for m in one["methods"]} == {m: [0] for m in one["methods"]}
    with pytest.raises(ConfigError, match="keeps none of the global seeds"):
        validate(with_({"seeds": [1], "methods": {"nnclr": {"seeds": [0]}}}))


def test_a_variant_needs_its_sampler_and_its_control_needs_the_variant_at_every_seed():
    with pytest.raises(ConfigError, match=r"methods.simclr_sepp runs seeds \[1, 2\] that 'simclr'"):
        validate(with_({"methods": {"simclr": {"seeds": [0]}}}))
    with pytest.raises(ConfigError, match=r"methods.simclr_steps2x runs seeds \[2\] that 'simclr_sepp'"):
        validate(with_({"methods": {"simclr_sepp": {"seeds": [0, 1]}}}))


@pytest.mark.parametrize("control,needle", [
    ({"positives": {"source": "oracle", "match_steps": "simclr_sepp"}}, "needs source augment"),
    ({"positives": {"source": "augment", "match_steps": "simclr_sepp", "equal_steps": True}}, "no equal_steps"),
    ({"positives": {"source": "augment", "match_steps": "nope"}}, "'nope' is not another method"),
    ({"positives": {"source": "augment", "match_steps": "ctrl"}}, "'ctrl' is not another method"),
    ({"algo": "mocov2", "positives": {"source": "augment", "match_steps": "simclr_sepp"}}, "same algo"),
    ({"pretrain": {"epochs": 6}}, "same epochs"),
])
def test_bad_controls_are_rejected_naming_the_fix(control, needle):
    entry = {"algo": "simclr", "temperature": 0.2, "positives": {"source": "augment", "match_steps": "simclr_sepp"}}
    entry = deep_merge(entry, control)
    if control.get("algo") == "mocov2":
        entry.pop("temperature")
    p = params()
    p["methods"]["ctrl"] = entry
    with pytest.raises(ConfigError, match=needle):
        validate(p)


def test_a_control_cannot_match_another_control():
    p = with_({"methods": {"ctrl": {"algo": "simclr", "positives": {"source": "augment",
                                                                     "match_steps": "simclr_steps2x"}}}})
    with pytest.raises(ConfigError, match="is itself a control; name the variant it matches \\('simclr_sepp'\\)"):
        validate(p)


def test_eval_selectors_name_existing_methods():
    validate(with_({"eval": {"semisup": {"methods": []}, "detection": {"methods": None}}}))
    with pytest.raises(ConfigError, match=r"eval.semisup.methods \['ghost'\]"):
        validate(with_({"eval": {"semisup": {"methods": ["simclr", "ghost"]}}}))


def test_overlay_null_removes_a_method(tmp_path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text("methods:\n  nnclr: null\n  snclr: null\n")
    p = load_params(REPO / "params.yaml", [overlay])
    assert "nnclr" not in p["methods"] and "snclr" not in p["methods"] and "simclr" in p["methods"]
    # A null inside a method entry is a value, not a removal (null thresholds mean "off").
    assert p["methods"]["simclr_sepp"]["positives"]["dup_threshold"] is None
