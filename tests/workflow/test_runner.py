"""sempos.runner: the DAG without Snakemake/DVC, in dependency order, skipping fresh outputs."""

import os
import subprocess
from collections import Counter
from pathlib import Path

from sempos import runner
from sempos.config import load_params
from sempos.pipeline import fill, instance_name

REPO = Path(__file__).resolve().parents[2]


def default_params():
    return load_params(REPO / "params.yaml")


def test_jobs_come_after_the_jobs_that_make_their_inputs():
    p = default_params()
    jobs = runner.ordered_jobs(p)
    made = set()
    producers = {fill(o, wc) for s, wc in jobs for o in s.outputs}
    for stage, wc in jobs:
        for dep in stage.inputs(p, wc):
            assert dep not in producers or dep in made, f"{instance_name(stage, wc)} runs before {dep} exists"
        made |= {fill(o, wc) for o in stage.outputs}
    names = [instance_name(s, wc) for s, wc in jobs]
    assert len(names) == len(set(names))
    # The same job counts as Snakemake's dry run of the default (tests/workflow/test_snakemake_dryrun.py).
    assert Counter(s.name for s, _ in jobs) == {"download": 2, "prepare": 2, "pretrain": 19, "mine": 3, "embed": 38,
                                                "knn": 19, "linear": 19, "transfer": 19, "semisup": 6,
                                                "report": 1}
    # SePP: the host's pretraining, then its miner, then the variant and its compute-matched control.
    order = {n: i for i, n in enumerate(names)}
    assert order["pretrain-fmnist-simclr-seed1"] < order["mine-fmnist-simclr_sepp-seed1"] \
        < min(order["pretrain-fmnist-simclr_sepp-seed1"], order["pretrain-fmnist-simclr_steps2x-seed1"])


def test_fresh_outputs_are_skipped_and_newer_inputs_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = default_params()
    jobs = {instance_name(s, wc): (s, wc) for s, wc in runner.ordered_jobs(p)}
    stage, wc = jobs["prepare-fmnist"]
    assert runner.is_stale(stage, wc, p)  # nothing exists
    raw = Path("data/raw/fmnist")
    raw.mkdir(parents=True)
    (raw / "MANIFEST.json").write_text("{}")
    out = Path("data/prepared/fmnist.pt")
    out.parent.mkdir(parents=True)
    out.write_bytes(b"x")
    os.utime(raw / "MANIFEST.json", (1000, 1000))
    assert not runner.is_stale(stage, wc, p)
    os.utime(raw / "MANIFEST.json", None)  # the raw data changed after the prepared file was written
    os.utime(out, (2000, 2000))
    assert runner.is_stale(stage, wc, p)


def test_a_failed_job_stops_the_run_and_names_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_run(cmd):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 3 if len(calls) == 2 else 0)

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    lines = []
    assert runner.run(default_params(), "params.yaml", log=lines.append) == 3
    assert len(calls) == 2 and "-m" in calls[0] and calls[0][calls[0].index("-m") + 1].startswith("sempos.stages.")
    assert "prepare-fmnist failed (exit 3)" in lines[-1]  # download-fmnist ran first and succeeded


def test_dry_run_lists_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner.subprocess, "run", lambda cmd: (_ for _ in ()).throw(AssertionError("ran")))
    lines = []
    assert runner.run(default_params(), "params.yaml", dry_run=True, log=lines.append) == 0
    assert lines[0] == "sempos.runner: 128 of 128 jobs to run" and len(lines) == 129


def test_gpu_jobs_go_through_the_launcher_like_snakemake_ones():
    p = default_params()
    p["runtime"]["gpus_per_job"] = 2
    jobs = {instance_name(s, wc): (s, wc) for s, wc in runner.ordered_jobs(p)}
    heavy = runner.command(*jobs["pretrain-fmnist-simclr-seed0"], p, "params.yaml")
    light = runner.command(*jobs["knn-fmnist-simclr-seed0"], p, "params.yaml")
    assert heavy[1:5] == ["-m", "sempos.launch", "--gpus", "2"] and heavy[5] == "--"
    assert heavy[6:9] == [heavy[0], "-m", "sempos.stages.pretrain"]
    assert light[1:3] == ["-m", "sempos.stages.knn"]
