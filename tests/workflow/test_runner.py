"""sempos.runner: the DAG without Snakemake/DVC, in dependency order, rerunning what its records call stale."""

import subprocess
from collections import Counter
from pathlib import Path

from sempos import provenance, runner
from sempos.config import deep_merge, load_params

REPO = Path(__file__).resolve().parents[2]


def default_params():
    return load_params(REPO / "params.yaml")


def test_jobs_come_after_the_jobs_that_make_their_inputs():
    p = default_params()
    jobs = runner.ordered_jobs(p)
    made = set()
    producers = {o for j in jobs for o in j.output_files()}
    for j in jobs:
        for dep in j.input_files():
            assert dep not in producers or dep in made, f"{j.name} runs before {dep} exists"
        made |= set(j.output_files())
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    # The same job counts as Snakemake's dry run of the default (tests/workflow/test_snakemake_dryrun.py).
    assert Counter(j.stage.name for j in jobs) == {"download": 2, "prepare": 2, "pretrain": 19, "mine": 3, "embed": 38,
                                                   "knn": 19, "linear": 19, "transfer": 19, "semisup": 6,
                                                   "report": 1}
    # SePP: the host's pretraining, then its miner, then the variant and its compute-matched control.
    order = {n: i for i, n in enumerate(names)}
    assert order["pretrain-fmnist-simclr-seed1"] < order["mine-fmnist-simclr_sepp-seed1"] \
        < min(order["pretrain-fmnist-simclr_sepp-seed1"], order["pretrain-fmnist-simclr_steps2x-seed1"])


def fake_run(p, j):
    for f in j.output_files():
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        Path(f).write_text(f)
    provenance.write_record(p, j)


def test_current_jobs_are_skipped_and_changes_rerun_downstream(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = default_params()
    jobs = runner.ordered_jobs(p)
    assert len(runner.plan(p, jobs)) == len(jobs)  # nothing exists
    for j in jobs:
        Path(j.log).parent.mkdir(parents=True, exist_ok=True)
        if j.stage.name == "download":
            Path(j.outputs["raw"]).mkdir(parents=True)
            (Path(j.outputs["raw"]) / "MANIFEST.json").write_text("{}")
            provenance.write_record(p, j)
        else:
            fake_run(p, j)
    assert runner.plan(p, jobs) == []
    # A setting of one method: its pretraining, then everything downstream of it, nothing else.
    hot = deep_merge(p, {"methods": {"simclr": {"temperature": 0.3}}})
    todo = runner.plan(hot, runner.ordered_jobs(hot))
    assert todo[0][0].name == "pretrain-fmnist-simclr-seed0" and todo[0][1] == "settings changed"
    names = {j.name for j, _ in todo}
    assert "mine-fmnist-simclr_sepp-seed0" in names and "knn-fmnist-simclr_sepp-seed0" in names
    assert not {n for n in names if "mocov2" in n or "nnclr" in n} and "report" in names
    # An input edited by hand makes its readers stale.
    Path("data/prepared/digits.pt").write_text("edited")
    stale = {j.name: why for j, why in runner.plan(p, jobs)}
    assert stale["prepare-digits"] == "data/prepared/digits.pt was modified"
    assert stale["embed-fmnist-simclr-seed0-digits"] == "data/prepared/digits.pt changed"
    assert stale["transfer-fmnist-simclr-seed0-digits"] == "features/fmnist/simclr/seed0/digits.pt is rebuilt"


def test_a_failed_job_stops_the_run_and_names_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake(cmd):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 3 if len(calls) == 2 else 0)

    monkeypatch.setattr(runner.subprocess, "run", fake)
    lines = []
    n = len(runner.ordered_jobs(default_params()))
    assert runner.run(default_params(), "params.yaml", log=lines.append) == 3
    assert len(calls) == 2 and "-m" in calls[0] and calls[0][calls[0].index("-m") + 1].startswith("sempos.stages.")
    assert "prepare-fmnist failed (exit 3)" in lines[-1] and "logs/prepare/fmnist.log" in lines[-1]
    assert lines[2].startswith(f"[1/{n}] done in ") and f"{n - 1} left, ETA " in lines[2]


def test_dry_run_lists_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner.subprocess, "run", lambda cmd: (_ for _ in ()).throw(AssertionError("ran")))
    lines = []
    assert runner.run(default_params(), "params.yaml", dry_run=True, log=lines.append) == 0
    assert lines[0] == "sempos.runner: 128 of 128 jobs to run" and len(lines) == 129


def test_gpu_jobs_go_through_the_launcher_like_snakemake_ones():
    p = default_params()
    p["runtime"]["gpus_per_job"] = 2
    jobs = {j.name: j for j in runner.ordered_jobs(p)}
    heavy = runner.command(jobs["pretrain-fmnist-simclr-seed0"], p, "params.yaml")
    light = runner.command(jobs["knn-fmnist-simclr-seed0"], p, "params.yaml")
    assert heavy[1:5] == ["-m", "sempos.launch", "--gpus", "2"] and heavy[5] == "--"
    assert heavy[6:9] == [heavy[0], "-m", "sempos.stages.pretrain"]
    assert light[1:3] == ["-m", "sempos.stages.knn"]
