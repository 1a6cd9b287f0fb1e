"""The stage table for per-method seeds, compute-matched controls and the eval method selectors."""

from pathlib import Path

from sempos.config import deep_merge, drop_removed_methods, load_params
from sempos.pipeline import STAGES, detect_runs, runs, semisup_runs

REPO = Path(__file__).resolve().parents[2]


def default():
    return load_params(REPO / "params.yaml")


def test_runs_follow_each_methods_seeds():
    p = default()
    got = {(r["method"], r["seed"]) for r in runs(p)}
    assert ("simclr_steps2x", "2") in got and ("nnclr", "0") in got and ("nnclr", "1") not in got


def test_control_waits_for_the_variants_pair_file_and_reads_its_positives_params():
    p = default()
    wc = {"ds": "fmnist", "method": "simclr_steps2x", "seed": "1"}
    assert STAGES["pretrain"].inputs(p, wc) == {"prepared": "data/prepared/fmnist.pt",
                                                "match_pairs": "pairs/fmnist/simclr_sepp/seed1.csv"}
    assert "methods.simclr_sepp.positives" in STAGES["pretrain"].params(p, wc)
    # A control of a non-mined variant (oracle pairs are built in the job) needs no extra file.
    p = deep_merge(p, {"methods": {"simclr_steps2x": {"positives": {"match_steps": "simclr_oracle"}}}})
    assert STAGES["pretrain"].inputs(p, wc) == {"prepared": "data/prepared/fmnist.pt"}


def test_eval_selectors_absent_means_every_method_and_empty_means_none():
    p = default()
    assert {r["method"] for r in semisup_runs(p)} == {"simclr", "simclr_sepp"}
    assert detect_runs(p) == []
    every = drop_removed_methods(deep_merge(p, {"eval": {"semisup": {"methods": None}}}))
    assert len(semisup_runs(every)) == len(runs(p)) * len(p["eval"]["semisup"]["fractions"])
    report_inputs = STAGES["report"].inputs(p, {})
    assert len(report_inputs["semisup"]) == len(semisup_runs(p)) and report_inputs["detect"] == []
