"""The report stage on fake metrics files: numeric CSVs, paired deltas with CIs, the CI ∋ 0 mark, steps."""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from sempos.config import drop_removed_methods, validate
from sempos.pipeline import job
from sempos.stages import report

REPO = Path(__file__).resolve().parents[3]

# knn top1 per seed: the variant beats the 2x-steps host by 2, 3, 4 (CI excludes 0) but the 1x host by
# 1, 2, 3 on kNN (CI contains 0). Linear: variant − control = 0, 1, -1 (CI contains 0).
KNN = {"random_init": {0: 60.0}, "simclr": {0: 70.0, 1: 71.0, 2: 72.0}, "simclr_sepp": {0: 71.0, 1: 73.0, 2: 75.0},
       "simclr_steps2x": {0: 69.0, 1: 70.0, 2: 71.0}, "mocov2": {0: 65.0}}
LINEAR = {"random_init": {0: 62.0}, "simclr": {0: 75.0, 1: 75.0, 2: 78.0}, "simclr_sepp": {0: 76.0, 1: 77.0, 2: 77.0},
          "simclr_steps2x": {0: 76.0, 1: 76.0, 2: 78.0}, "mocov2": {0: 66.0}}
STEPS = {"random_init": 0, "simclr": 57, "simclr_sepp": 117, "simclr_steps2x": 117, "mocov2": 57}


def params():
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    for m in ("simclr_oracle", "simclr_random", "nnclr", "snclr"):
        p["methods"][m] = None
    p["eval"]["semisup"]["methods"] = []
    p["eval"]["transfer"]["targets"] = []
    drop_removed_methods(p)
    validate(p)
    return p


def run_report(p):
    """The report stage with the paths the stage table gives it."""
    j = job("report", p, {})
    report.body(p, SimpleNamespace(inputs=j.inputs, outputs=j.outputs))


def write(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for m, seeds in KNN.items():
        for s, v in seeds.items():
            write(tmp_path / f"results/knn/fmnist/{m}/seed{s}/metrics.json", {"method": m, "seed": s, "top1": v})
            write(tmp_path / f"results/linear/fmnist/{m}/seed{s}/metrics.json",
                  {"method": m, "seed": s, "top1": LINEAR[m][s], "top5": 99.0})
            steps = STEPS[m]
            write(tmp_path / f"runs/fmnist/{m}/seed{s}/positives.json",
                  {"source": "augment", "epochs": 3, "batch_size": 128, "pairs_per_epoch": steps // 3 * 128,
                   "optimizer_steps": steps, "pairs_seen": steps * 128, "monitor_bank": 1000, "monitor_queries": 500})
            hist = "epoch,steps,loss,knn_top1,lr,seconds,pairs_per_s\n" + "".join(
                f"{e},{e * steps // 3},1.0,{55 + e + s},0.01,1.0,100.0\n" for e in range(4))
            write(tmp_path / f"runs/fmnist/{m}/seed{s}/history.csv", hist)
        if m == "simclr_sepp":
            for s in seeds:
                write(tmp_path / f"pairs/fmnist/{m}/seed{s}.json",
                      {"method": m, "from": "simclr", "seed": s, "config": {"k": 1}, "num_pairs": 2500,
                       "pair_precision": 73.0, "neighbour_precision_at_k": {"1": 73.0, "5": 70.0}})
    return tmp_path


def test_report_shows_statistics_controls_and_steps(workdir):
    run_report(params())
    main = pd.read_csv(workdir / "results/tables/main.csv")
    row = main[(main["method"] == "simclr") & (main["metric"] == "knn top1")].iloc[0]
    # 70, 71, 72: mean 71, s = 1, CI 71 ± 4.303 / sqrt(3)
    assert (row["n"], row["mean"], row["std"]) == (3, 71.0, 1.0)
    assert row["ci_low"] == pytest.approx(71 - 2.4843, abs=1e-3) and row["steps"] == 57
    one = main[(main["method"] == "mocov2") & (main["metric"] == "knn top1")].iloc[0]
    assert one["n"] == 1 and pd.isna(one["ci_low"]) and pd.isna(one["std"])  # one seed: no interval

    comp = pd.read_csv(workdir / "results/tables/comparisons.csv")
    got = {(r.reference, r.relation, r.metric): r for r in comp[comp["variant"] == "simclr_sepp"].itertuples()}
    ctrl = got[("simclr_steps2x", "compute-matched host", "knn top1")]
    assert (ctrl.n, ctrl.delta) == (3, 3.0) and ctrl.delta_ci_low == pytest.approx(3 - 2.4843, abs=1e-3)
    assert not ctrl.ci_contains_0 and (ctrl.variant_steps, ctrl.reference_steps) == (117, 117)
    host = got[("simclr", "host", "knn top1")]
    assert host.delta == 2.0 and host.ci_contains_0 and host.reference_steps == 57
    assert got[("simclr_steps2x", "compute-matched host", "linear top1")].ci_contains_0

    md = (workdir / "results/report.md").read_text()
    assert "+3.00 [+0.52, +5.48]" in md  # vs the compute-matched host: CI excludes 0, no mark
    assert "+2.00 [-0.48, +4.48] (CI ∋ 0)" in md  # vs the 1x host
    assert "65.00 (n=1, no CI)" in md and "71.00 ± 1.00 [68.5, 73.5]" in md
    assert "1,000 train-split images" in md and "first 500 test images" in md  # the monitor says what it is
    assert "pretraining epochs: 3" not in md and "optimiser steps" in md
    per_seed = pd.read_csv(workdir / "results/tables/per_seed.csv")
    assert per_seed.set_index(["method", "seed"]).loc[("simclr_steps2x", 1), "steps"] == 117
    budget = (workdir / "results/tables/budget.md").read_text()
    assert "augment, steps of simclr_sepp" in budget and "117" in budget
    for name in ("accuracy.png", "deltas.png", "knn_monitor.png", "convergence_simclr.png"):
        assert (workdir / "results/plots" / name).stat().st_size > 1000, name


def test_missing_compute_matched_host_is_named(workdir):
    p = params()
    del p["methods"]["simclr_steps2x"]
    run_report(p)
    md = (workdir / "results/report.md").read_text()
    assert "none: add a positives.match_steps control" in md
