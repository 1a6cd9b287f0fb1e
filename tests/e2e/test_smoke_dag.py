"""The real DAG on config/smoke.yaml: Snakemake runs it, DVC adopts it, a one-method change reruns one method."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sempos.config import load_params
from sempos.pipeline import render_dvc

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def run(cmd, cwd, check=True):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                         env={"PATH": f"{BIN}:/usr/bin:/bin", "CI": "1", "HOME": str(cwd)})
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("dag")
    for item in ("Snakefile", "workflow", "profiles", "src"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, wd / item, **(
            {"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")} if src.is_dir() else {}))
    # One params file that both tools read: the default with the smoke overlay merged in.
    params = load_params(REPO / "params.yaml", [REPO / "config" / "smoke.yaml"])
    (wd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (wd / "dvc.yaml").write_text(render_dvc(params))
    run([str(BIN / "dvc"), "init", "--no-scm", "-q"], wd)
    run([str(BIN / "snakemake"), "--cores", "2"], wd)
    return wd


def test_dag_produces_report_tables_and_plots(workdir):
    report = (workdir / "results" / "report.md").read_text()
    assert "simclr" in report and "mocov2" in report and "random_init" in report
    for name in ("main.md", "main.csv", "main.tex", "per_seed.csv", "published_small_scale.md"):
        assert (workdir / "results" / "tables" / name).exists(), name
    for name in ("accuracy.png", "knn_monitor.png", "transfer.png", "deltas.png", "convergence_simclr.png"):
        assert (workdir / "results" / "plots" / name).stat().st_size > 1000, name
    for name in ("comparisons.md", "comparisons.csv", "budget.md", "sampler_precision.md", "neighbours.md"):
        assert (workdir / "results" / "tables" / name).exists(), name
    # The compute-matched control took exactly the variant's optimiser steps, on augmented pairs only.
    pos = {m: json.loads((workdir / "runs" / "fmnist" / m / "seed0" / "positives.json").read_text())
           for m in ("simclr", "simclr_sepp", "simclr_steps2x")}
    assert pos["simclr_steps2x"]["optimizer_steps"] == pos["simclr_sepp"]["optimizer_steps"] \
        > pos["simclr"]["optimizer_steps"] > 0
    assert pos["simclr_steps2x"]["source"] == "augment" and pos["simclr_steps2x"]["match_steps"] == "simclr_sepp"
    comp = pd.read_csv(workdir / "results" / "tables" / "comparisons.csv")
    matched = comp[(comp["variant"] == "simclr_sepp") & (comp["relation"] == "compute-matched host")]
    assert set(matched["reference"]) == {"simclr_steps2x"}
    assert (matched["variant_steps"] == matched["reference_steps"]).all()
    main = pd.read_csv(workdir / "results" / "tables" / "main.csv")
    assert {"method", "metric", "n", "mean", "std", "ci_low", "ci_high", "steps"} <= set(main.columns)
    assert "n=1, no CI" in report  # the smoke DAG runs one seed: no interval is invented
    per_seed = pd.read_csv(workdir / "results" / "tables" / "per_seed.csv")
    methods = yaml.safe_load((workdir / "params.yaml").read_text())["methods"]
    assert set(per_seed["method"]) == set(methods)
    assert {"simclr_sepp", "simclr_steps2x", "nnclr", "snclr"} <= set(methods)
    assert per_seed["semisup 10% top1"].between(0, 100).all()
    for col in ("knn top1", "linear top1", "linear top5", "transfer digits top1", "transfer fmnist_heldout top1"):
        assert per_seed[col].between(0, 100).all(), col
    hist = pd.read_csv(workdir / "runs" / "fmnist" / "simclr" / "seed0" / "history.csv")
    assert list(hist["epoch"]) == [0, 1, 2]
    assert list(hist["steps"]) == [0, pos["simclr"]["steps_per_epoch"], pos["simclr"]["optimizer_steps"]]
    assert not list(workdir.rglob("*.part")), "temporary files left behind"


def test_dvc_adopts_the_snakemake_run_and_reruns_only_the_changed_method(workdir):
    run([str(BIN / "dvc"), "commit", "-f", "-q"], workdir)
    status = run([str(BIN / "dvc"), "status"], workdir).stdout
    assert "up to date" in status, status
    dry = run([str(BIN / "dvc"), "repro", "--dry"], workdir).stdout
    assert "Running stage" not in dry, dry

    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["methods"]["simclr"]["temperature"] = 0.3
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dry = run([str(BIN / "dvc"), "repro", "--dry"], workdir).stdout
    ran = {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")}
    # DVC's dry run lists the stages whose own deps/params changed; downstream stages follow once
    # the new outputs exist. Only simclr's pretraining depends on methods.simclr.
    assert ran == {"pretrain-fmnist-simclr-seed0"}, ran

    # Snakemake follows the change downstream at once: simclr, then its SePP miner, the variant and the
    # variant's compute-matched control (sized by the mined pair file); nothing of mocov2.
    smk = " ".join(run([str(BIN / "snakemake"), "-n", "--cores", "2", "--quiet", "rules"], workdir).stdout.split())
    assert "pretrain 3" in smk and "mine 1" in smk, smk


def test_metrics_are_plain_json_with_method_and_seed(workdir):
    m = json.loads((workdir / "results" / "linear" / "fmnist" / "mocov2" / "seed0" / "metrics.json").read_text())
    assert m["method"] == "mocov2" and m["seed"] == 0 and 0 <= m["top1"] <= 100
