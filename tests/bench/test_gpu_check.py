"""bench/gpu_check.py: its --cpu --tiny run (the GPU check's code paths at toy sizes) writes one complete
results file whose figures are the ones the benchmarks measured, and a section at its cap is stopped
and listed as skipped."""

import csv
import importlib.util
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"pass", "fail", "info", "skipped", "error"}


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_check")
    out, work = tmp / "out", tmp / "work"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--cpu", "--tiny", "--out-dir", str(out),
                        "--work", str(work)], capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    csvs, mds = sorted(out.glob("*.csv")), sorted(out.glob("*.md"))
    assert len(csvs) == 1 and len(mds) == 1 and csvs[0].stem == mds[0].stem  # ONE results file, two formats
    rows = list(csv.DictReader(csvs[0].open()))
    return {"rows": rows, "md": mds[0].read_text(), "stdout": r.stdout, "work": work, "header": list(rows[0])}


def _rows(run, section, **match):
    return [r for r in run["rows"] if r["section"] == section and all(r[k] == v for k, v in match.items())]


def _raw(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


@pytest.mark.slow
def test_tiny_run_writes_every_section_with_known_statuses(tiny_run):
    mod = _module()
    assert tiny_run["header"] == mod.FIELDS
    assert {r["section"] for r in tiny_run["rows"]} == {"setup", *mod.SECTIONS, "budget"}
    assert {r["status"] for r in tiny_run["rows"]} <= STATUSES
    # An error is a code path that broke (a missing package or time cap reads 'skipped'), so none here.
    assert not [r for r in tiny_run["rows"] if r["status"] == "error"], [r for r in tiny_run["rows"] if r["status"] == "error"]
    assert tiny_run["md"] in tiny_run["stdout"]  # the Markdown is printed as written
    for r in tiny_run["rows"]:
        assert r["check"] in tiny_run["md"]
    env = {r["metric"]: r["value"] for r in _rows(tiny_run, "setup", check="environment")}
    assert env["torch"] == torch.__version__ and env["mode"].startswith("cpu, tiny")


@pytest.mark.slow
def test_targets_are_judged_from_the_values(tiny_run):
    judged = [r for r in tiny_run["rows"] if r["target"] and r["status"] in ("pass", "fail")]
    assert judged
    numeric = [r for r in judged if re.fullmatch(r"(>=|<) [\d.]+", r["target"])]
    assert numeric
    for r in numeric:
        op, bound = r["target"].split()
        v = float(r["value"])
        assert (r["status"] == "pass") == (v >= float(bound) if op == ">=" else v < float(bound)), r


@pytest.mark.slow
def test_figures_are_the_benchmarks_measurements(tiny_run):
    work = tiny_run["work"]
    # mine: every row of bench/mine.py's own CSV, as measured
    mine = [r for r in _raw(work / "mine.csv") if r["status"] == "ok"]
    assert mine
    for raw in mine:
        check = f"{raw['method']} {raw['dtype']} (tiny, scaled)"
        got = {r["metric"]: r["value"] for r in _rows(tiny_run, "mine", check=check)}
        assert float(got["queries_per_s"]) == float(raw["queries_per_s"]) > 0
        assert float(got["full_mine_s"]) == float(raw["full_mine_s"])
        assert abs(float(raw["full_mine_s"]) - int(raw["N"]) / float(raw["queries_per_s"])) <= \
            int(raw["N"]) / float(raw["queries_per_s"]) ** 2 * 0.05 + 0.006
    # throughput: each measured item's figures and ratios come from bench/throughput.py's CSV
    measured = [r for r in _raw(work / "throughput.csv") if r["status"].startswith("ok")]
    assert measured, "not one throughput item measured"
    for raw in measured:
        got = {r["metric"]: r["value"] for r in _rows(tiny_run, "throughput", check=f"tiny {raw['algo']} {raw['mode']}")}
        real, synth = float(raw["real_pairs_s"]), float(raw["synthetic_pairs_s"])
        assert float(got["real_pairs_s"]) == real > 0 and float(got["synthetic_pairs_s"]) == synth > 0
        # the ratio is of the unrounded rates; each rate is rounded to 0.05 in the CSV
        assert abs(float(got["real_vs_synthetic"]) - real / synth) <= 0.0005 + 0.05 / synth + 0.05 * real / synth**2
    planned = {f"tiny {a} {m}" for a in ("simclr", "snclr") for m in ("eager", "compile")}
    assert planned <= {r["check"] for r in _rows(tiny_run, "throughput")}  # measured or listed as skipped
    # cuda tests: one outcome row per test case pytest ran
    outcomes = _rows(tiny_run, "cuda_tests", metric="outcome")
    xml = work / "cuda_tests.xml"
    if xml.exists():
        assert len(outcomes) == len(list(ET.parse(xml).iter("testcase"))) > 0
    assert all(r["status"] != "fail" for r in outcomes), [r for r in outcomes if r["status"] == "fail"]
    # proxy: the results table is the one the report stage wrote, and the run took longer than its jobs
    proxy = {r["metric"]: r for r in _rows(tiny_run, "proxy", check="runner")}
    if proxy["completed"]["status"] == "pass":
        table = _raw(work / "proxy" / "results" / "tables" / "main.csv")
        for row in table:
            got = {r["metric"]: r["value"] for r in _rows(tiny_run, "proxy", check=f"result {row['method']}")}
            assert row["mean"] == "" or got[row["metric"]] == row["mean"]
        stage_s = sum(float(r["value"]) for r in tiny_run["rows"] if r["check"].startswith("stage "))
        assert float(proxy["wall_s"]["value"]) >= stage_s > 0
        assert "Results table of the proxy run" in tiny_run["md"]
    total = _rows(tiny_run, "budget", check="total")[0]
    assert 0 < float(total["value"]) and total["status"] == "pass"


def test_a_command_past_its_cap_is_stopped_and_keeps_its_output(tmp_path):
    mod = _module()
    script = "import time; print('measured one', flush=True); time.sleep(60)"
    t0 = time.perf_counter()
    ran = mod.run_cmd([sys.executable, "-c", script], 2.0, tmp_path / "log", mod.base_env(None, cpu=True))
    assert ran.timed_out and time.perf_counter() - t0 < 20
    assert "measured one" in ran.tail


def test_unmeasured_figures_are_skipped_not_judged():
    mod = _module()
    assert mod.judged("mine", "x", "full_mine_s", "12.5").status == "pass"
    assert mod.judged("mine", "x", "full_mine_s", 31).status == "fail"
    assert mod.judged("throughput", "x", "real_vs_lightly", "nan").status == "skipped"
    assert mod.judged("throughput", "x", "real_vs_synthetic", "").status == "skipped"


def test_runner_log_is_parsed_into_jobs_and_stage_seconds():
    # The exact lines sempos.runner writes: '[i/n] name (why): cmd', then 'done in <progress.duration>'.
    from sempos.progress import duration

    log = "\n".join(["sempos.runner: 3 of 3 jobs to run",
                     "[1/3] prepare-fmnist (outputs missing): python -m sempos.stages.prepare --ds fmnist",
                     f"[1/3] done in {duration(4.2)}; 2 left, ETA {duration(8.4)}",
                     "[2/3] pretrain-fmnist-simclr-seed0 (no record): python -m sempos.stages.pretrain",
                     f"[2/3] done in {duration(125)}; 1 left, ETA {duration(60)}",
                     "[3/3] pretrain-fmnist-simclr-seed1 (no record): python -m sempos.stages.pretrain",
                     f"[3/3] done in {duration(3720)}; all done in {duration(3900)}"])
    jobs, per_stage = _module().runner_jobs(log)
    assert jobs == ["prepare-fmnist", "pretrain-fmnist-simclr-seed0", "pretrain-fmnist-simclr-seed1"]
    assert per_stage == {"prepare": (1, 4.2), "pretrain": (2, 125.0 + 3720.0)}
