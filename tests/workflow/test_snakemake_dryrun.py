"""Snakemake dry runs over the default and every overlay list the expected jobs."""

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sempos.config import load_params
from sempos.pipeline import STAGES

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")


def expected_counts(params) -> dict[str, int]:
    return {name: len(s.instances(params)) for name, s in STAGES.items()}


def dry_run(tmp_path: Path, overlay: str | None) -> dict[str, int]:
    # A fresh directory holding only the workflow, so no existing output shortens the job list.
    for item in ("Snakefile", "params.yaml", "workflow", "config", "profiles"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    cmd = [SNAKEMAKE, "-n", "--cores", "2", "--quiet", "rules"]
    if overlay:
        cmd += ["--configfile", overlay]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = collections.Counter()
    for line in out.stdout.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) not in ("total", "job"):
            counts[m.group(1)] = int(m.group(2))
    return dict(counts)


@pytest.mark.parametrize("overlay", [None] + sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_dry_run_lists_every_stage(tmp_path, overlay):
    params = load_params(REPO / "params.yaml", [REPO / "config" / overlay] if overlay else [])
    counts = dry_run(tmp_path, f"config/{overlay}" if overlay else None)
    want = {k: v for k, v in expected_counts(params).items() if v}
    want["all"] = 1
    assert counts == want


def test_invalid_config_fails_dry_run_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain:\n  epochz: 3\n")
    out = subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(bad)], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "epochz" in out.stdout + out.stderr


def test_default_job_counts_by_hand(tmp_path):
    # Written out from params.yaml, independently of the stage table: the SimCLR comparison (host, SePP-ID,
    # oracle, random, the 2x-steps host) at 3 seeds = 15 runs, plus random_init, MoCo-v2, NNCLR, SNCLR at seed 0
    # = 19 runs; a miner per SePP-ID seed; 2 targets embedded per run (fmnist, digits); 10 % fine-tuning for
    # simclr and simclr_sepp (3 seeds each); detection off (eval.detection.methods is empty).
    counts = dry_run(tmp_path, None)
    assert counts == {"download": 2, "prepare": 2, "pretrain": 19, "mine": 3, "embed": 38, "knn": 19, "linear": 19,
                      "transfer": 19, "semisup": 6, "report": 1, "all": 1}


def test_slurm_profile_names_real_rules_and_every_gpu_rule():
    import yaml

    prof = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm"
    per_rule = prof["set-resources"]
    assert set(per_rule) <= set(STAGES), set(per_rule) - set(STAGES)  # a typo would silently apply nothing
    heavy = {name for name, s in STAGES.items() if s.heavy}
    assert {r for r in per_rule if per_rule[r].get("slurm_partition") == "gpu"} == heavy
    assert set(prof.get("set-threads", {})) <= set(STAGES)


def test_rules_record_settings_and_code_by_value_not_the_params_path():
    from sempos.pipeline import SnakemakeView

    p = load_params(REPO / "params.yaml", [REPO / "config" / "smoke.yaml"])
    a, b = SnakemakeView(p, "params.yaml"), SnakemakeView(p, ".sempos/params-0123.yaml")
    wc = {"ds": "fmnist", "method": "nnclr", "seed": "0"}
    for name in STAGES:
        assert a.shell(name) == b.shell(name) and "{SMK.params_file}" in a.shell(name)
    assert a.sections("pretrain")(wc) == b.sections("pretrain")(wc)
    assert '"methods.nnclr": {"algo": "nnclr"' in a.sections("pretrain")(wc)
    code = a.code("pretrain")(wc)
    assert "src/sempos/memory_bank.py" in code and "src/sempos/algos/simclr.py" not in code
    assert all(len(d) == 16 for d in code.values())
