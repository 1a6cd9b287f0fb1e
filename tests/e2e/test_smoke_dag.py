"""The real DAG on config/smoke.yaml in a git repository, as a user's clone: Snakemake runs it, reruns by
content (settings, imported code), DVC adopts it as the README says, and an experiment reruns one branch.

One module-scoped Snakemake run; every other check is derived from it (tests run in file order and put
back what they change).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sempos.config import load_params
from sempos.pipeline import all_jobs

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERLAY = "config/smoke.yaml"
pytestmark = pytest.mark.e2e


def run(cmd, cwd, check=True):
    ident = {f"GIT_{who}_{what}": val for who in ("AUTHOR", "COMMITTER")
             for what, val in (("NAME", "sempos test"), ("EMAIL", "test@sempos"))}
    # PYTHONPATH: the clone's own sources run (and are what its code deps hash), not the installed checkout.
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "CI": "1", "HOME": str(cwd), "PYTHONPATH": str(cwd / "src"), **ident}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def clone_like(dest: Path) -> None:
    """What `git clone` of this checkout would hold, plus its untracked, not-ignored work in progress."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "clone"], dest)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    wd = tmp_path_factory.mktemp("clone")
    clone_like(wd)
    run([str(BIN / "snakemake"), "--cores", "2", "--configfile", OVERLAY], wd)
    return wd


def smk_dry(wd, *extra):
    return run([str(BIN / "snakemake"), "-n", "--cores", "2", *extra], wd).stdout


def test_dag_produces_report_tables_and_plots(repo):
    report = (repo / "results" / "report.md").read_text()
    assert "simclr" in report and "mocov2" in report and "random_init" in report
    for name in ("main.md", "main.csv", "main.tex", "per_seed.csv", "published_small_scale.md"):
        assert (repo / "results" / "tables" / name).exists(), name
    for name in ("accuracy.png", "knn_monitor.png", "transfer.png", "deltas.png", "convergence_simclr.png"):
        assert (repo / "results" / "plots" / name).stat().st_size > 1000, name
    for name in ("comparisons.md", "comparisons.csv", "budget.md", "sampler_precision.md", "neighbours.md"):
        assert (repo / "results" / "tables" / name).exists(), name
    # The compute-matched control took exactly the variant's optimiser steps, on augmented pairs only.
    pos = {m: json.loads((repo / "runs" / "fmnist" / m / "seed0" / "positives.json").read_text())
           for m in ("simclr", "simclr_sepp", "simclr_steps2x")}
    assert pos["simclr_steps2x"]["optimizer_steps"] == pos["simclr_sepp"]["optimizer_steps"] \
        > pos["simclr"]["optimizer_steps"] > 0
    assert pos["simclr_steps2x"]["source"] == "augment" and pos["simclr_steps2x"]["match_steps"] == "simclr_sepp"
    comp = pd.read_csv(repo / "results" / "tables" / "comparisons.csv")
    matched = comp[(comp["variant"] == "simclr_sepp") & (comp["relation"] == "compute-matched host")]
    assert set(matched["reference"]) == {"simclr_steps2x"}
    assert (matched["variant_steps"] == matched["reference_steps"]).all()
    main = pd.read_csv(repo / "results" / "tables" / "main.csv")
    assert {"method", "metric", "n", "mean", "std", "ci_low", "ci_high", "steps"} <= set(main.columns)
    assert "n=1, no CI" in report  # the smoke DAG runs one seed: no interval is invented
    per_seed = pd.read_csv(repo / "results" / "tables" / "per_seed.csv")
    methods = load_params(repo / "params.yaml", [repo / OVERLAY])["methods"]
    assert set(per_seed["method"]) == set(methods)
    assert {"simclr_sepp", "simclr_steps2x", "nnclr", "snclr"} <= set(methods)
    # Fine-tuning runs for eval.semisup.methods only (all methods when it is null): NaN elsewhere, not 0.
    chosen = load_params(repo / "params.yaml", [repo / OVERLAY])["eval"]["semisup"].get("methods")
    chosen = list(methods) if chosen is None else chosen
    semi = per_seed.set_index("method")["semisup 10% top1"].dropna()
    assert set(semi.index) == set(chosen) and semi.between(0, 100).all()
    for col in ("knn top1", "linear top1", "linear top5", "transfer digits top1", "transfer fmnist_heldout top1"):
        assert per_seed[col].between(0, 100).all(), col
    metrics = json.loads((repo / "results" / "metrics.json").read_text())
    assert set(metrics) == set(methods) and 0 <= metrics["simclr"]["knn_top1"] <= 100
    hist = pd.read_csv(repo / "runs" / "fmnist" / "simclr" / "seed0" / "history.csv")
    assert list(hist["epoch"]) == [0, 1, 2]
    assert list(hist["steps"]) == [0, pos["simclr"]["steps_per_epoch"], pos["simclr"]["optimizer_steps"]]
    assert not list(repo.rglob("*.part")), "temporary files left behind"


def test_every_job_leaves_a_record_a_log_and_group_readable_outputs(repo):
    p = load_params(repo / "params.yaml", [repo / OVERLAY])
    mask = os.umask(0)
    os.umask(mask)
    for j in all_jobs(p):
        rec = json.loads((repo / j.record).read_text())
        assert rec["job"] == j.name and set(rec["outputs"]) == set(j.output_files())
        assert "done in" in (repo / j.log).read_text(), j.log
        for f in j.output_files() + [j.record]:
            if (repo / f).is_file():
                assert stat.S_IMODE((repo / f).stat().st_mode) == 0o666 & ~mask, f


def test_snakemake_reruns_by_content_not_by_file_or_path(repo):
    assert "Nothing to be done" in smk_dry(repo, "--configfile", OVERLAY)
    # The overlay's settings moved into params.yaml: same settings, another params file -> nothing reruns.
    params = repo / "params.yaml"
    original = params.read_text()
    params.write_text(yaml.safe_dump(load_params(params, [repo / OVERLAY]), sort_keys=False))
    try:
        assert "Nothing to be done" in smk_dry(repo)
    finally:
        params.write_text(original)
    # memory_bank.py is imported by NNCLR and SNCLR only: their pretraining (and what follows) reruns.
    bank = repo / "src" / "sempos" / "memory_bank.py"
    code = bank.read_text()
    bank.write_text(code + "\n# an edit\n")
    try:
        dry = smk_dry(repo, "--configfile", OVERLAY)
    finally:
        bank.write_text(code)
    reruns = [line.split("method=")[1].split(",")[0] for line in dry.splitlines()
              if "wildcards:" in line and "method=" in line and "target=" not in line and "frac=" not in line]
    pretrained = {block.split("wildcards:")[1].split("method=")[1].split(",")[0]
                  for block in dry.split("rule pretrain:")[1:]}
    assert pretrained == {"nnclr", "snclr"}, dry[-3000:]
    assert "rule mine:" not in dry and "rule download:" not in dry and "rule prepare:" not in dry
    assert set(reruns) <= {"nnclr", "snclr"}


def test_a_stage_run_by_hand_refuses_inputs_made_with_other_settings(repo):
    out = run([str(BIN / "python"), "-m", "sempos.stages.pretrain", "--params", "params.yaml", "--ds", "fmnist",
               "--method", "simclr", "--seed", "0"], repo, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "data/prepared/fmnist.pt was made with other settings than params.yaml" in lines[0]
    assert "data.train_subset 384 -> 2500" in lines[0]
    # 64 flipped bytes in the prepared file: named, not read.
    prepared = repo / "data" / "prepared" / "fmnist.pt"
    good, when = prepared.read_bytes(), prepared.stat()
    bad = bytearray(good)
    for i in range(len(bad) // 2, len(bad) // 2 + 64):
        bad[i] ^= 0xFF
    prepared.write_bytes(bytes(bad))
    try:
        merged = repo / ".sempos" / "smoke.yaml"
        merged.write_text(yaml.safe_dump(load_params(repo / "params.yaml", [repo / OVERLAY])))
        out = run([str(BIN / "python"), "-m", "sempos.stages.semisup", "--params", str(merged), "--ds", "fmnist",
                   "--method", "simclr", "--seed", "0", "--frac", "10"], repo, check=False)
    finally:
        prepared.write_bytes(good)
        os.utime(prepared, ns=(when.st_atime_ns, when.st_mtime_ns))  # as it was: Snakemake also looks at mtimes
    assert out.returncode == 2 and "data/prepared/fmnist.pt is not the file prepare-fmnist wrote" in out.stderr
    assert "Nothing to be done" in smk_dry(repo, "--configfile", OVERLAY)


def branch_of(p: dict, method: str) -> set[str]:
    """The jobs downstream of one method's pretraining (and it), from the stage table."""
    jobs = all_jobs(p)
    made_by = {o: j.name for j in jobs for o in j.output_files()}
    branch = {f"pretrain-fmnist-{method}-seed0"}
    changed = True
    while changed:
        changed = False
        for j in jobs:
            if j.name not in branch and any(made_by.get(f) in branch for f in j.input_files()):
                branch.add(j.name)
                changed = True
    return branch


def test_readme_dvc_sequence_adopts_the_run_and_experiments_rerun_one_branch(repo):
    dvc = str(BIN / "dvc")
    # The committed default dvc.yaml works in a git repository (dvc.lock is not git-ignored).
    assert run([dvc, "status"], repo).returncode == 0
    # The README's block, for the overlay the run used:
    run([str(BIN / "python"), "-m", "sempos.pipeline", "dvc", "--configfile", OVERLAY, "-o", "dvc.yaml"], repo)
    run([dvc, "commit", "-f", "-q"], repo)
    run(["git", "add", "dvc.yaml", "dvc.lock", "params.smoke.yaml"], repo)
    run(["git", "commit", "-qm", "adopt the smoke run"], repo)
    assert "up to date" in run([dvc, "status"], repo).stdout
    assert "Running stage" not in run([dvc, "repro"], repo).stdout
    exp = run([dvc, "exp", "run", "-S", "params.smoke.yaml:methods.simclr.temperature=0.3"], repo).stdout
    ran = {line.split("'")[1] for line in exp.splitlines() if line.startswith("Running stage")}
    p = load_params(repo / "params.yaml", [repo / OVERLAY])
    branch = branch_of(p, "simclr")
    # Every job of simclr itself and its miner rerun; DVC skips a job below one whose outputs came out
    # byte-identical (the SePP variant, when the new backbone mines the same pairs), and nothing else runs.
    assert {j for j in branch if "-simclr-" in j} | {"mine-fmnist-simclr_sepp-seed0", "report"} <= ran
    assert ran <= branch | {"report"}, sorted(ran - branch)

    shown = json.loads(run([dvc, "exp", "show", "--json"], repo).stdout)
    temps = [r["data"]["params"]["params.smoke.yaml"]["data"]["methods"]["simclr"]["temperature"]
             for base in shown for e in base.get("experiments") or [] for r in e.get("revs") or []]
    assert 0.3 in temps, json.dumps(shown)[:2000]
    diff = json.loads(run([dvc, "metrics", "diff", "--json"], repo).stdout)["results/metrics.json"]
    assert diff and {k.split(".")[0] for k in diff} <= {"simclr", "simclr_sepp"}, diff
    plots = json.loads(run([dvc, "plots", "diff", "--json"], repo).stdout)["data"]["knn_vs_epoch"][0]
    assert set(plots["revisions"]) == {"workspace", "HEAD"}
    assert {v["filename"].split("/")[0] for v in plots["content"]["data"]["values"]} == set(p["methods"])


def test_metrics_are_plain_json_with_method_and_seed(repo):
    m = json.loads((repo / "results" / "linear" / "fmnist" / "mocov2" / "seed0" / "metrics.json").read_text())
    assert m["method"] == "mocov2" and m["seed"] == 0 and 0 <= m["top1"] <= 100
