"""The GPU check: every CUDA claim of the project measured in one run of at most 8 minutes (`make gpu-check`).

Sections, in order, each with a time cap (seconds, on one H100/H200 with 16 cores):

  setup       20   install the carried wheels (.gpu-wheels/, `make gpu-wheels`) that this Python lacks; device,
                   driver, torch/CUDA/cuDNN versions, commit
  cuda_tests  70   `pytest -m cuda`: bf16 vs fp32 step of every algorithm, GPU augmentation vs the CPU path,
                   single-process training, host syncs per step, resume; each test's figures
  mine        45   bench/mine.py at ImageNet size (1,281,167 x 2048, top-20), bf16 and fp16, faiss-gpu's
                   IndexFlatIP when installed; then every query for real when the estimate fits (target < 30 s)
  proxy      150   the pipeline through `python -m sempos.runner` on params.yaml + config/fmnist-gpu.yaml +
                   config/gpu-check.yaml (simclr, simclr_sepp): wall time and its results table
  loader      30   bench/loader.py --device cuda --skip-cpu: the JPEG loader feeding ResNet-50/224 (bf16,
                   channels_last) vs synthetic data; skipped while that benchmark does not exist
  throughput 165   bench/throughput.py, ResNet-18/32 px and ResNet-50/224 px x SimCLR, MoCo-v2, SNCLR, eager
                   then compiled: real vs synthetic (target >= 0.90) vs lightly's loop (target >= 5x)

The caps add up to the budget (--budget, 480 s) as a schedule: a section may run until the sum of the caps
so far, so time a section leaves unused passes to the next. A section that reaches its time is stopped,
keeps what it measured, and lists what it skipped; one run therefore always writes the results file.
It reads the GPU's settings (nvidia-smi queries) and never changes them.

  python3 bench/gpu_check.py [--copy-to DIR]        # on the GPU machine (make gpu-check)
  python bench/gpu_check.py --cpu --tiny            # same code paths at toy sizes on a CPU (make test runs it)
  python3 bench/gpu_check.py --only throughput --budget 300   # rerun one section

Output: results/gpu_check/<UTC time>.csv (section, check, metric, value, target, status, note) and .md (the
same, as tables per section, plus the proxy's results table), the Markdown also printed. In --tiny mode the
sizes are toys and pass/fail against the real targets means nothing; the file says so.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # the GPU machine has no installed sempos; sections import it from here
WHEELS = ROOT / ".gpu-wheels"
DATA = ROOT / ".gpu-data"
FIELDS = ["section", "check", "metric", "value", "target", "status", "note"]
BUDGET_S = 480.0
CAPS = {"setup": 20, "cuda_tests": 70, "mine": 45, "proxy": 150, "loader": 30, "throughput": 165}
TINY_CAPS = {"setup": 10, "cuda_tests": 60, "mine": 25, "proxy": 90, "loader": 30, "throughput": 40}
MODULES = {"jsonschema": True, "yaml": True, "tabulate": True, "sklearn": True, "pycocotools": True,
           "lightly": False}  # import name -> needed (lightly only feeds the throughput comparison)
PROXY_METHODS = ("simclr", "simclr_sepp")  # the report's baseline becomes simclr: the Δ column is SePP-ID's
TINY_PROXY_METHODS = ("simclr",)
IMAGENET_TRAIN = 1_281_167
# Targets (issue 13): real pipeline >= 90 % of the synthetic ceiling and >= 5x lightly; mining < 30 s.
TARGETS = {"real_vs_synthetic": (">=", 0.90), "real_vs_lightly": (">=", 5.0), "full_mine_s": ("<", 30.0)}


# --- records and the results file --------------------------------------------------------------------

@dataclass
class Rec:
    section: str
    check: str
    metric: str
    value: object = ""
    target: str = ""
    status: str = "info"   # pass | fail | info | skipped | error
    note: str = ""


def judged(section: str, check: str, metric: str, value, note: str = "") -> Rec:
    """A figure with its target from TARGETS: pass/fail by value; no value (NaN, empty) is 'skipped'."""
    op, bound = TARGETS[metric]
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if math.isnan(v):
        return Rec(section, check, metric, "", f"{op} {bound:g}", "skipped", note or "not measured")
    ok = v >= bound if op == ">=" else v < bound
    return Rec(section, check, metric, value, f"{op} {bound:g}", "pass" if ok else "fail", note)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


def write_results(recs: list[Rec], header: dict, out_dir: Path, stamp: str, extra_md: dict[str, str]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stamp}.csv", out_dir / f"{stamp}.md"
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in recs:
            w.writerow({k: getattr(r, k) for k in FIELDS})
    tmp.replace(csv_path)
    tmp = md_path.with_name(md_path.name + ".tmp")
    tmp.write_text(markdown(recs, header, extra_md))
    tmp.replace(md_path)
    return csv_path, md_path


def markdown(recs: list[Rec], header: dict, extra_md: dict[str, str]) -> str:
    mark = {"pass": " ✓", "fail": " ✗"}
    lines = [f"# GPU check {header['stamp']}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items() if k != "stamp"]
    counts = {s: sum(r.status == s for r in recs) for s in ("pass", "fail", "skipped", "error")}
    lines += ["", "Targets: " + ", ".join(f"{n} {c}" for n, c in counts.items()), ""]
    for section in dict.fromkeys(r.section for r in recs):
        rows = [r for r in recs if r.section == section]
        lines += [f"## {section}", ""]
        metrics = list(dict.fromkeys(r.metric for r in rows))
        checks = list(dict.fromkeys(r.check for r in rows))
        cell = {(r.check, r.metric): r for r in rows}
        lines.append("| check | " + " | ".join(metrics) + " |")
        lines.append("|---|" + "---|" * len(metrics))
        for c in checks:
            vals = []
            for m in metrics:
                r = cell.get((c, m))
                if r is None:
                    vals.append("")
                elif r.status in ("skipped", "error"):
                    vals.append(f"{r.status}: {r.note}" if r.note else r.status)
                else:
                    vals.append(_fmt(r.value) + mark.get(r.status, ""))
            lines.append(f"| {c} | " + " | ".join(v.replace("|", "/") for v in vals) + " |")
        targets = {(r.metric, r.target) for r in rows if r.target}
        if targets:
            lines += ["", "Targets (✓ met, ✗ missed): " + "; ".join(f"{m}: {t}" for m, t in sorted(targets))]
        notes = [f"- {r.check} / {r.metric}: {r.note}" for r in rows
                 if r.note and r.status not in ("skipped", "error")]
        if notes:
            lines += [""] + notes
        if section in extra_md:
            lines += ["", extra_md[section]]
        lines.append("")
    skipped = [r for r in recs if r.status in ("skipped", "error")]
    lines += ["## Skipped or failed to run", ""]
    lines += [f"- {r.section} / {r.check} / {r.metric}: {r.status}: {r.note}" for r in skipped] or ["- nothing"]
    return "\n".join(lines) + "\n"


# --- running a section's command under its time cap -----------------------------------------------------

@dataclass
class Ran:
    rc: int | None
    timed_out: bool
    seconds: float
    tail: str


def run_cmd(cmd: list[str], timeout: float, log: Path, env: dict, cwd: Path = ROOT) -> Ran:
    """Run cmd, output to log; at the timeout the whole process group is stopped (what it wrote stays)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}  (cwd {cwd}, limit {timeout:.0f} s)\n".encode())
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc, timed_out = proc.wait(timeout=max(timeout, 1.0)), False
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            rc = proc.returncode
    text = log.read_text(errors="replace")
    return Ran(rc, timed_out, time.perf_counter() - t0, text[-3000:])


def _tail_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --- the context every section gets -------------------------------------------------------------------------

@dataclass
class Ctx:
    args: argparse.Namespace
    work: Path
    env: dict
    python: str
    tiny: bool
    device: str               # "cuda" or "cpu"
    extra_md: dict = field(default_factory=dict)
    site: Path | None = None

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"


def base_env(ctx_site: Path | None, cpu: bool) -> dict:
    env = dict(os.environ)
    paths = [str(ROOT / "src")] + ([str(ctx_site)] if ctx_site else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", CI="1")
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# --- setup ----------------------------------------------------------------------------------------------------

def missing_modules() -> list[str]:
    return [m for m in MODULES if importlib.util.find_spec(m) is None]


def install_wheels(site: Path, timeout: float, log: Path) -> tuple[list[Rec], bool]:
    """pip install --no-index the carried wheels into `site` when a module they provide is missing here."""
    missing = missing_modules()
    if not missing:
        return [Rec("setup", "wheels", "installed", "none needed", note="every module is importable")], False
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        need = [m for m in missing if MODULES[m]]
        return [Rec("setup", "wheels", "installed", "", status="error" if need else "skipped",
                    note=f"missing {', '.join(missing)} and no {WHEELS.name}/: run `make gpu-wheels` where pip "
                         f"works and carry {WHEELS.name}")], False
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(site), "--find-links", str(WHEELS)] + [str(w) for w in wheels]
    ran = run_cmd(cmd, timeout, log, dict(os.environ))
    if ran.rc != 0:
        return [Rec("setup", "wheels", "installed", "", status="error",
                    note=f"pip install from {WHEELS.name} failed: {_tail_line(ran.tail)}")], False
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    names = ", ".join(w.name.split("-")[0] for w in wheels)
    return [Rec("setup", "wheels", "installed", len(wheels), note=f"{names} in {ran.seconds:.1f} s")], True


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit() -> str:
    sha = _git("rev-parse", "--short=12", "HEAD")
    if sha:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return sha + (" + uncommitted changes" if dirty else "")
    staged = WHEELS / "COMMIT"
    if staged.exists():  # the GPU machine gets the files without .git: `make gpu-wheels` wrote this
        return staged.read_text().strip() + " (from `make gpu-wheels`)"
    return "unknown (no git, no .gpu-wheels/COMMIT)"


def environment(ctx: Ctx) -> tuple[list[Rec], dict]:
    import torch

    recs, header = [], {}

    def add(metric, value, note=""):
        recs.append(Rec("setup", "environment", metric, value, note=note))
        header[metric] = value

    add("mode", "cpu, tiny sizes (not GPU figures)" if ctx.tiny else f"{ctx.device}, full sizes")
    if ctx.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        add("device", f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
                      f"sm_{props.major}{props.minor})")
        smi = shutil.which("nvidia-smi")
        if smi:  # read only: the check never changes clocks, power or MIG
            try:
                q = subprocess.run([smi, "--query-gpu=driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=20)
                line = (q.stdout.strip().splitlines() or ["n/a"])[0] if q.returncode == 0 else "n/a"
            except (OSError, subprocess.TimeoutExpired):
                line = "n/a"
            add("driver, max SM clock, power limit", line)
    else:
        add("device", f"cpu: {platform.processor() or platform.machine()}")
    add("cpu cores", os.cpu_count())
    add("python", platform.python_version())
    add("torch", torch.__version__)
    add("cuda (torch build)", torch.version.cuda or "none")
    add("cudnn", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none")
    for mod in MODULES:
        spec = importlib.util.find_spec(mod)
        if spec is None:
            recs.append(Rec("setup", "modules", mod, "missing", status="error" if MODULES[mod] else "info",
                            note="needed" if MODULES[mod] else "throughput's lightly rows will say 'not installed'"))
    add("commit", commit())
    return recs, header


# --- cuda_tests -------------------------------------------------------------------------------------------------

def cuda_test_files() -> list[str]:
    """Every test file that holds a `cuda`-marked test (collecting the whole tree would import every test)."""
    files = [p for p in sorted((ROOT / "tests").rglob("test_*.py")) if "mark.cuda" in p.read_text(errors="replace")]
    return [str(p.relative_to(ROOT)) for p in files]


def sec_cuda_tests(ctx: Ctx, timeout: float) -> list[Rec]:
    xml = ctx.work / "cuda_tests.xml"
    cmd = [ctx.python, "-m", "pytest", "-m", "cuda", "-v", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", "-o", "junit_family=xunit1", f"--junitxml={xml}"]
    env = dict(ctx.env)
    if ctx.tiny:
        # Two of the same tests on the CPU, so the collection, the JUnit report and a test body run in CI;
        # all of them on the CPU (bf16 autocast there is slow): SEMPOS_CUDA_TESTS_ON_CPU=1 pytest -m cuda.
        env["SEMPOS_CUDA_TESTS_ON_CPU"] = "1"
        cmd += ["-k", "same_seed or (waits and simclr)"]
    ran = run_cmd(cmd + cuda_test_files(), timeout, ctx.log("cuda_tests"), env)
    # pytest writes its JUnit report at the end; a run stopped at the cap leaves only its -v lines.
    recs = junit_records(xml) if xml.exists() else verbose_records(ctx.log("cuda_tests").read_text(errors="replace"))
    if ran.timed_out:
        recs.append(Rec("cuda_tests", "pytest", "run", "", status="skipped",
                        note=f"time cap {timeout:.0f} s reached; tests not listed above did not run"))
    elif not recs:
        recs.append(Rec("cuda_tests", "pytest", "run", "", status="error", note=_tail_line(ran.tail)))
    done = [r for r in recs if r.metric == "outcome"]
    failed = sum(r.status == "fail" for r in done)
    passed = sum(r.status == "pass" for r in done)
    skipped = sum(r.status == "skipped" for r in done)
    recs.insert(0, Rec("cuda_tests", "all", "passed / failed / skipped", f"{passed} / {failed} / {skipped}",
                       "0 failed", "pass" if passed and not failed and not ran.timed_out else "fail",
                       f"{ran.seconds:.0f} s"))
    return recs


def verbose_records(log: str) -> list[Rec]:
    recs = []
    for m in re.finditer(r"^(\S+\.py)::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", log, re.M):
        status = {"PASSED": "pass", "SKIPPED": "skipped"}.get(m.group(3), "fail")
        recs.append(Rec("cuda_tests", f"{Path(m.group(1)).stem}::{m.group(2)}", "outcome", status, "passes", status,
                        "figures are in the JUnit report, which a stopped run does not write"))
    return recs


def junit_records(xml: Path) -> list[Rec]:
    if not xml.exists():
        return []
    recs = []
    for tc in ET.parse(xml).iter("testcase"):
        name = f"{Path(tc.get('file') or tc.get('classname', '').replace('.', '/')).stem}::{tc.get('name')}"
        kids = {c.tag: c for c in tc}
        if "failure" in kids or "error" in kids:
            node = kids.get("failure", kids.get("error"))
            msg = (node.get("message") or node.text or "").strip().splitlines()
            status, note = "fail", (msg[0][:200] if msg else "")
        elif "skipped" in kids:
            status, note = "skipped", (kids["skipped"].get("message") or "")[:200]
        else:
            status, note = "pass", ""
        recs.append(Rec("cuda_tests", name, "outcome", status, "passes", status, note))
        for p in tc.iter("property"):
            recs.append(Rec("cuda_tests", name, p.get("name"), p.get("value")))
        recs.append(Rec("cuda_tests", name, "seconds", round(float(tc.get("time") or 0), 2)))
    return recs


# --- mine ---------------------------------------------------------------------------------------------------------

def mine_args(ctx: Ctx) -> tuple[list[str], int]:
    if ctx.tiny:
        return ["--n", "20000", "--dims", "64", "--k", "20", "--dtypes", "float32", "bfloat16", "--queries", "256",
                "--max-keys", "4000", "--block-q", "128", "--block-k", "2048", "--repeats", "1"], 20000
    return ["--n", str(IMAGENET_TRAIN), "--dims", "2048", "--k", "20", "--dtypes", "bfloat16", "float16",
            "--queries", "65536", "--repeats", "1"], IMAGENET_TRAIN


def mine_records(rows: list[dict], label: str) -> list[Rec]:
    recs = []
    for r in rows:
        check = f"{r['method']} {r['dtype']} {label}"
        if r.get("status", "ok") != "ok":
            kind = "skipped" if r["status"].startswith("skipped") else "error"
            recs.append(Rec("mine", check, "full_mine_s", "", "< 30", kind, r["status"].removeprefix(kind + ": ")))
            continue
        scaled = int(r["queries_measured"]) < int(r["N"])
        note = (f"{r['kind']}: {int(r['keys_measured']):,} keys, "
                + (f"time scaled from {int(r['queries_measured']):,} of {int(r['N']):,} queries" if scaled
                   else "every query timed"))
        recs.append(Rec("mine", check, "queries_per_s", float(r["queries_per_s"])))
        recs.append(judged("mine", check, "full_mine_s", float(r["full_mine_s"]), note))
    return recs


def sec_mine(ctx: Ctx, timeout: float) -> list[Rec]:
    t0 = time.perf_counter()
    argv, n = mine_args(ctx)
    out = ctx.work / "mine.csv"
    cmd = [ctx.python, str(ROOT / "bench" / "mine.py"), "--device", ctx.device, "--faiss", "--out", str(out)] + argv
    ran = run_cmd(cmd, timeout, ctx.log("mine"), ctx.env)
    rows = read_csv(out)
    recs = mine_records(rows, "(scaled)" if not ctx.tiny else "(tiny, scaled)")
    if ran.timed_out or ran.rc != 0 or not rows:
        why = f"time cap {timeout:.0f} s reached" if ran.timed_out else _tail_line(ran.tail)
        recs.append(Rec("mine", "bench/mine.py", "run", "", status="skipped" if ran.timed_out else "error",
                        note=why + "; rows above are what it measured"))
        return recs
    # Every query for real (the 30 s claim measured, not scaled) when the scaled estimate says it fits.
    first = next((r for r in rows if r["method"].startswith("torch") and r.get("status") == "ok"), None)
    label = "(every query)"
    if first is None:
        return recs + [Rec("mine", f"torch matmul+topk {label}", "full_mine_s", "", "< 30", "skipped", "no torch row")]
    n_full = 2000 if ctx.tiny else n  # tiny: a size whose keys all fit under --max-keys
    full_argv = ["--n", str(n_full), "--dims", first["D"], "--k", first["k"], "--dtypes", first["dtype"],
                 "--queries", "0", "--repeats", "1"]
    if ctx.tiny:
        full_argv += ["--max-keys", "4000", "--block-q", "128", "--block-k", "2048"]
    left = timeout - (time.perf_counter() - t0)
    est = float(first["full_mine_s"]) * (n_full / n) ** 2 * 1.3 + (5 if ctx.tiny else 15)  # + start-up, keys
    if first["kind"] != "measured" and not ctx.tiny:
        why = f"only {int(first['keys_measured']):,} of {n:,} keys fit in memory"
    elif est >= left:
        why = f"estimated {est:.0f} s does not fit the {left:.0f} s left"
    else:
        full_out = ctx.work / "mine_full.csv"
        cmd = [ctx.python, str(ROOT / "bench" / "mine.py"), "--device", ctx.device, "--out", str(full_out)] + full_argv
        ran = run_cmd(cmd, left - 1, ctx.log("mine"), ctx.env)
        rows_full = [r for r in read_csv(full_out) if r["method"].startswith("torch")]
        if rows_full:
            return recs + mine_records(rows_full, label + (" (tiny)" if ctx.tiny else ""))
        why = "time cap reached" if ran.timed_out else _tail_line(ran.tail)
    return recs + [Rec("mine", f"torch matmul+topk {first['dtype']} {label}", "full_mine_s", "", "< 30",
                       "skipped", why)]


# --- proxy --------------------------------------------------------------------------------------------------------

TINY_PROXY = {
    "runtime": {"device": "cpu", "threads": 1, "precision": "fp32", "gpus_per_job": 0, "progress": False},
    "data": {"max_train": 1200, "train_subset": 256, "val_size": 200, "max_test": 300, "semi_fractions": [10]},
    "backbone": {"width": 4},
    "pretrain": {"epochs": 1, "batch_size": 64, "knn_monitor": 0},
    "eval": {"linear": {"epochs": 2}, "semisup": {"fractions": []}, "transfer": {"targets": []},
             "detection": {"methods": ["simclr"], "train_scenes": 8, "test_scenes": 4,
                           "solver": {"iters": 2, "ims_per_batch": 2, "warmup_iters": 1, "steps": [1, 2],
                                      "precise_bn_iters": 1}}},
}


def fmnist_source() -> Path | None:
    from sempos.data.catalog import get

    spec = get("fmnist")
    names = [f.name for f in spec.files]
    for d in (DATA / "fmnist", ROOT / "data" / "raw" / "fmnist", *spec.local_dirs):
        if all((d / n).is_file() for n in names):
            return d
    return None


def proxy_params(ctx: Ctx) -> dict:
    import yaml

    from sempos.config import deep_merge, load_params, validate

    p = load_params(ROOT / "params.yaml", [ROOT / "config" / "fmnist-gpu.yaml", ROOT / "config" / "gpu-check.yaml"])
    methods = TINY_PROXY_METHODS if ctx.tiny else PROXY_METHODS
    if ctx.tiny:
        p = deep_merge(p, TINY_PROXY)
    p["methods"] = {m: p["methods"][m] for m in methods}
    if p["report"].get("baseline") not in p["methods"]:
        p["report"]["baseline"] = methods[0]
    validate(p, "the gpu-check proxy params")
    yaml.safe_dump(p, sort_keys=False)  # fails here, not in the runner, if something is not YAML
    return p


def sec_proxy(ctx: Ctx, timeout: float) -> list[Rec]:
    import yaml

    from sempos.data.download import fetch_dataset

    t0 = time.perf_counter()
    wd = ctx.work / "proxy"
    p = proxy_params(ctx)
    src = fmnist_source()
    if src is None:
        return [Rec("proxy", "data", "fmnist", "", status="error",
                    note=f"no Fashion-MNIST copy: run `make gpu-wheels` (stages it into {DATA.name}/fmnist) and carry it")]
    raw = wd / "data" / "raw" / "fmnist"
    raw.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name.endswith(".gz"):
            shutil.copyfile(f, raw / f.name)
    fetch_dataset("fmnist", wd / "data" / "raw")  # the download stage's own checks, on the offline copy
    (wd / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = dict(ctx.env)
    if ctx.device == "cuda" and "SEMPOS_VISIBLE_GPUS" not in env and "CUDA_VISIBLE_DEVICES" not in env:
        import torch

        # sempos.launch would otherwise import torch in every job just to count the devices.
        env["SEMPOS_VISIBLE_GPUS"] = ",".join(str(i) for i in range(torch.cuda.device_count()))
    left = timeout - (time.perf_counter() - t0)
    ran = run_cmd([ctx.python, "-m", "sempos.runner", "--params", "params.yaml"], left, ctx.log("proxy"), env, cwd=wd)
    recs = [Rec("proxy", "runner", "methods", " ".join(p["methods"]),
                note="params.yaml + config/fmnist-gpu.yaml + config/gpu-check.yaml" + (" + tiny cut" if ctx.tiny else ""))]
    jobs, per_stage = runner_jobs(ctx.log("proxy").read_text(errors="replace"))
    status = "pass" if ran.rc == 0 else ("skipped" if ran.timed_out else "fail")
    note = ("" if ran.rc == 0 else f"time cap {timeout:.0f} s reached after {len(jobs)} jobs" if ran.timed_out
            else _tail_line(ran.tail))
    recs.append(Rec("proxy", "runner", "completed", ran.rc == 0, "exit 0", status, note))
    recs.append(Rec("proxy", "runner", "wall_s", round(ran.seconds, 1), note=f"{len(jobs)} jobs"))
    for stage, (n, secs) in per_stage.items():
        recs.append(Rec("proxy", f"stage {stage}", "seconds", round(secs, 1), note=f"{n} jobs"))
    table = wd / "results" / "tables" / "main.md"
    # main.csv is tidy: one row per (method, metric) with n, mean, std, ci_low, ci_high, steps.
    for row in read_csv(wd / "results" / "tables" / "main.csv"):
        if row.get("mean") not in ("", None):
            recs.append(Rec("proxy", f"result {row['method']}", row["metric"], row["mean"]))
    if table.exists():
        ctx.extra_md["proxy"] = "Results table of the proxy run (results/tables/main.md):\n\n" + table.read_text()
    return recs


def runner_jobs(log: str) -> tuple[list[str], dict]:
    """Jobs that finished and seconds per stage, from sempos.runner's '[i/n] name: cmd' / 'done in' lines."""
    jobs, per_stage, current = [], {}, None
    for line in log.splitlines():
        m = re.match(r"\[(\d+)/(\d+)\] ([\w.-]+)(?: \([^)]*\))?: ", line)  # '[i/n] name (why): cmd'
        if m:
            current = m.group(3)
            continue
        m = re.match(r"\[(\d+)/(\d+)\] done in (?:(\d+) h )?(?:(\d+) min)? ?(?:([\d.]+) s)?", line)
        if m and current and any(m.group(k) for k in (3, 4, 5)):
            jobs.append(current)
            stage = current.split("-")[0]
            n, secs = per_stage.get(stage, (0, 0.0))
            h, mins, s = (float(m.group(k) or 0) for k in (3, 4, 5))
            per_stage[stage] = (n + 1, secs + 3600 * h + 60 * mins + s)
    return jobs, per_stage


# --- loader (bench/loader.py, when it exists) -----------------------------------------------------------------------

def sec_loader(ctx: Ctx, timeout: float) -> list[Rec]:
    """bench/loader.py's GPU rows: the JPEG loader feeding the pretraining step (ResNet-50/224, bf16,
    channels_last) vs the same step on synthetic data, both decode paths. Skipped while the file is absent."""
    script = ROOT / "bench" / "loader.py"
    if not script.exists():
        return [Rec("loader", "bench/loader.py", "run", "", status="skipped", note="bench/loader.py does not exist yet")]
    out = ctx.work / "loader.csv"
    size = (["--images", "40", "--pairs", "16", "--batch", "8", "--workers", "1", "--feed", "--arch", "resnet18_cifar",
             "--width", "4", "--crop", "32", "--steps", "2", "--warmup", "1"] if ctx.tiny else
            ["--images", "1024", "--steps", "10", "--warmup", "3"])
    cmd = [ctx.python, str(script), "--device", ctx.device, "--skip-cpu", "--data", str(ctx.work / "jpeg"),
           "--out", str(out)] + size
    ran = run_cmd(cmd, timeout, ctx.log("loader"), ctx.env)
    rows = read_csv(out) if ran.rc == 0 else []
    recs = []
    for row in rows:
        check = row.get("loader") or "row"
        recs += [Rec("loader", check, k, v) for k, v in row.items() if k not in ("loader", "device") and v != ""]
    if not rows:
        recs.append(Rec("loader", "bench/loader.py", "run", "", status="skipped" if ran.timed_out else "error",
                        note=f"time cap {timeout:.0f} s reached" if ran.timed_out else _tail_line(ran.tail)))
    return recs


# --- throughput -------------------------------------------------------------------------------------------------------

def throughput_plan(ctx: Ctx) -> tuple[list[str], list[str], list[str], list[str]]:
    if ctx.tiny:
        return ["tiny"], ["simclr", "snclr"], ctx.args.throughput_modes or ["eager", "compile"], [
            "--batch", "16", "--steps", "2", "--warmup", "1", "--images", "64", "--threads", "2",
            "--lightly-workers", "1", "--compile-backend", "aot_eager", "--guess-s", "eager=5", "compile=8", "lightly=5"]
    cores = os.cpu_count() or 1
    return ["r18_32", "r50_224"], ["simclr", "mocov2", "snclr"], ctx.args.throughput_modes or ["eager", "compile"], [
        "--batch", "256", "--steps", "20", "--warmup", "5", "--images", "4096",
        "--lightly-workers", str(max(1, cores - 1))]


def sec_throughput(ctx: Ctx, timeout: float) -> list[Rec]:
    configs, algos, modes, extra = throughput_plan(ctx)
    out = ctx.work / "throughput.csv"
    cmd = [ctx.python, str(ROOT / "bench" / "throughput.py"), "--device", ctx.device, "--configs", *configs,
           "--algos", *algos, "--modes", *modes, "--time-limit", str(max(1.0, timeout - 15)), "--out", str(out)] + extra
    ran = run_cmd(cmd, timeout, ctx.log("throughput"), ctx.env)
    rows = {(r["config"], r["algo"], r["mode"]): r for r in read_csv(out)}
    recs = []
    for mode in modes:
        for cfg in configs:
            for algo in algos:
                check = f"{cfg} {algo} {mode}"
                r = rows.get((cfg, algo, mode))
                if r is None:
                    why = f"time cap {timeout:.0f} s reached" if ran.timed_out else _tail_line(ran.tail) or "not run"
                    recs.append(Rec("throughput", check, "real_pairs_s", "", status="skipped", note=why))
                    continue
                status = r["status"]
                if not status.startswith("ok"):
                    kind = "skipped" if status.startswith("skipped") else "error"
                    recs.append(Rec("throughput", check, "real_pairs_s", "", status=kind,
                                    note=status.removeprefix(kind + ": ")))
                    continue
                for m in ("real_pairs_s", "synthetic_pairs_s", "lightly_pairs_s", "first_step_s"):
                    recs.append(Rec("throughput", check, m, float(r[m]) if r[m] not in ("", "nan") else ""))
                recs.append(judged("throughput", check, "real_vs_synthetic", r["real_vs_synthetic"]))
                lnote = "; ".join(s.strip().replace("lightly skipped: ", "lightly ") for s in status.split(";")[1:])
                if r["lightly_algo"] != algo and r["lightly_pairs_s"] not in ("", "nan"):
                    lnote = (lnote + "; " if lnote else "") + f"lightly has no {algo}: its {r['lightly_algo']} loop"
                recs.append(judged("throughput", check, "real_vs_lightly", r["real_vs_lightly"], lnote))
    if rows:
        any_row = next(iter(rows.values()))
        recs.append(Rec("throughput", "settings", "batch / steps / lightly workers",
                        f"{any_row['batch']} / {any_row['steps']} / {any_row['lightly_workers']}",
                        note="bf16 autocast + channels_last on CUDA; real = Trainer._step incl. augmentation"))
    return recs


# --- the schedule ------------------------------------------------------------------------------------------------------

SECTIONS = {"cuda_tests": sec_cuda_tests, "mine": sec_mine, "proxy": sec_proxy, "loader": sec_loader,
            "throughput": sec_throughput}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (hides any GPU from the sections)")
    ap.add_argument("--tiny", action="store_true", help="toy sizes: the same code paths in about a minute")
    ap.add_argument("--budget", type=float, default=None, help=f"total seconds (default {BUDGET_S:.0f}; tiny 240)")
    ap.add_argument("--cap", action="append", default=[], metavar="SECTION=S", help="override one section's cap")
    ap.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections (setup always runs)")
    ap.add_argument("--throughput-modes", nargs="+", choices=["eager", "compile"], default=None)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "results" / "gpu_check")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--copy-to", type=Path, default=None, help="also copy the results and the log here (e.g. $OUT)")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    caps = dict(TINY_CAPS if args.tiny else CAPS)
    for item in args.cap:
        name, _, secs = item.partition("=")
        if name not in caps:
            ap.error(f"--cap {item}: unknown section {name!r}; sections: {', '.join(caps)}")
        caps[name] = float(secs)
    budget = args.budget or (sum(TINY_CAPS.values()) if args.tiny else BUDGET_S)
    work = args.work or Path(tempfile.mkdtemp(prefix=f"sempos-gpu-check-{stamp}-"))
    work.mkdir(parents=True, exist_ok=True)
    site = work / "site"
    recs: list[Rec] = []
    used: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def cpu_s() -> float:  # this process and its finished children: wall >> cpu means a contended machine
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    recs_w, installed = install_wheels(site, caps["setup"], work / "logs" / "setup.log")
    recs += recs_w
    import torch

    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    if not args.cpu and device == "cpu":
        recs.append(Rec("setup", "environment", "cuda", "not available", status="error",
                        note="no CUDA device visible: every section runs on the CPU"))
    ctx = Ctx(args, work, base_env(site if installed else None, args.cpu), sys.executable, args.tiny, device,
              site=site if installed else None)
    try:
        env_recs, header = environment(ctx)
    except Exception as exc:  # the file must still be written
        env_recs, header = [Rec("setup", "environment", "read", "", status="error", note=repr(exc)[:300])], {}
    recs += env_recs
    header = {"stamp": stamp, **header, "command": "python3 bench/gpu_check.py " + " ".join(argv or sys.argv[1:]),
              "budget": f"{budget:.0f} s; caps " + ", ".join(f"{k} {v:g}" for k, v in caps.items())}
    used["setup"], cpu["setup"] = time.perf_counter() - start, cpu_s()

    sections = [s for s in SECTIONS if not args.only or s in args.only]
    schedule = caps["setup"]
    for name in SECTIONS:
        if name not in sections:
            continue
        schedule += caps[name]
        now = time.perf_counter() - start
        timeout = min(schedule, budget - 5) - now
        if timeout < 3:
            recs.append(Rec(name, "section", "run", "", status="skipped",
                            note=f"no time left in the budget ({now:.0f} s of {budget:.0f} s used)"))
            continue
        t0, c0 = time.perf_counter(), cpu_s()
        try:
            recs += SECTIONS[name](ctx, timeout)
        except Exception as exc:  # a broken section must not cost the others their rows
            msg = str(exc).strip().splitlines()
            recs.append(Rec(name, "section", "run", "", status="error",
                            note=f"{type(exc).__name__}: {msg[0][:300] if msg else ''}"))
        used[name], cpu[name] = time.perf_counter() - t0, cpu_s() - c0
    total = time.perf_counter() - start
    for name, secs in used.items():
        recs.append(Rec("budget", name, "seconds", round(secs, 1),
                        note=f"cap {caps[name]:g} s, plus what the sections before left unused"))
        recs.append(Rec("budget", name, "cpu_seconds", round(cpu[name], 1)))
    recs.append(Rec("budget", "total", "seconds", round(total, 1), f"<= {budget:g}",
                    "pass" if total <= budget else "fail"))
    csv_path, md_path = write_results(recs, header, args.out_dir, stamp, ctx.extra_md)
    print(md_path.read_text())
    logs = work / "logs"
    log_all = work / f"{stamp}.log"
    with log_all.open("w") as fh:
        for lg in sorted(logs.glob("*.log")) if logs.exists() else []:
            fh.write(f"===== {lg.name}\n{lg.read_text(errors='replace')}\n")
    if args.copy_to:
        args.copy_to.mkdir(parents=True, exist_ok=True)
        for f in (csv_path, md_path, log_all):
            shutil.copyfile(f, args.copy_to / f.name)
    print(f"wrote {csv_path} and {md_path} (logs: {log_all})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
