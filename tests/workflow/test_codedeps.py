"""Code deps: the static import closure of each stage module, and which jobs an edit of a module reruns."""

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from sempos import codedeps
from sempos.config import load_params
from sempos.pipeline import STAGES, all_jobs, code_files

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "sempos"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return root / "pkg"


def test_closure_follows_relative_lazy_and_package_imports(tmp_path):
    pkg = write(tmp_path / "src", {
        "pkg/__init__.py": "",
        "pkg/a.py": "import os\nfrom . import b\nfrom .sub.c import thing\n",
        "pkg/b.py": "def f():\n    from .d import y  # lazy: runs when f runs\n    return y\n",
        "pkg/d.py": "y = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import e\nthing = 2\n",
        "pkg/e.py": "import pkg.deep.mod\n",
        "pkg/deep/__init__.py": "",
        "pkg/deep/mod.py": "",
        "pkg/lazy/__init__.py": "_EXPORTS = {'f': 'fmod', 'g': 'gmod'}\n",
        "pkg/lazy/fmod.py": "",
        "pkg/lazy/gmod.py": "",
        "pkg/uses_f.py": "from .lazy import f\n",
        "pkg/uses_pkg.py": "import pkg.lazy\n",
        "pkg/unrelated.py": "from . import a\n",
    })
    got = codedeps.closure("pkg.a", pkg)
    assert got == {"pkg", "pkg.a", "pkg.b", "pkg.d", "pkg.sub", "pkg.sub.c", "pkg.e", "pkg.deep", "pkg.deep.mod"}
    assert codedeps.closure("pkg.uses_f", pkg) == {"pkg", "pkg.uses_f", "pkg.lazy", "pkg.lazy.fmod"}
    assert codedeps.closure("pkg.uses_pkg", pkg) == {"pkg", "pkg.uses_pkg", "pkg.lazy", "pkg.lazy.fmod",
                                                      "pkg.lazy.gmod"}
    assert codedeps.code_files(("pkg.sub.c",), pkg) == [f"src/pkg/{f}" for f in (
        "__init__.py", "deep/__init__.py", "deep/mod.py", "e.py", "sub/__init__.py", "sub/c.py")]


def test_imports_by_computed_name_are_all_accounted_for():
    # sempos.mining's lazy re-exports are followed through _EXPORTS; the algorithm registry's import is named
    # per job by the stage table (Stage.modules). A new computed import must be handled before it passes.
    assert codedeps.computed_imports() == {"sempos.mining", "sempos.algos.registry"}


@pytest.fixture(scope="module")
def stale_jobs():
    """module file -> names of the default's jobs whose code deps hold it (what an edit of it reruns)."""
    p = load_params(REPO / "params.yaml")
    out = defaultdict(set)
    for j in all_jobs(p):
        for f in code_files(j.stage, p, j.wc):
            out[f].add(j.name)
    return out


def test_every_module_reruns_only_the_jobs_that_import_it(stale_jobs):
    p = load_params(REPO / "params.yaml")
    algo_of = {m: e["algo"] for m, e in p["methods"].items()}
    for f in sorted(str(x.relative_to(REPO)) for x in SRC.rglob("*.py")):
        jobs = stale_jobs.get(f, set())
        stages = {j.split("-")[0] for j in jobs}
        rel = f.removeprefix("src/sempos/")
        if rel.startswith(("report/", "detection/")):
            assert "pretrain" not in stages and "mine" not in stages and "embed" not in stages, (f, stages)
        if rel.startswith("algos/"):
            assert stages <= {"pretrain"}, (f, stages)  # never download, prepare, mining or evaluation
        if rel.startswith("algos/") and rel not in ("algos/__init__.py", "algos/base.py", "algos/registry.py",
                                                    "algos/heads.py"):
            module = rel.removeprefix("algos/").removesuffix(".py")
            users = {m for m, a in algo_of.items() if a == module or (module == "mocov3" and a == "snclr")}
            assert {j.split("-")[2] for j in jobs} == users, (f, jobs)
        if rel.startswith("stages/") and rel not in ("stages/__init__.py", "stages/common.py"):
            own = rel.removeprefix("stages/").removesuffix(".py")
            assert stages == ({own} if own in STAGES and STAGES[own].instances(p) else set()), (f, stages)
    assert "src/sempos/pipeline.py" not in stale_jobs  # the table's effect on a job is its declared paths/params


def test_memory_bank_reruns_nnclr_and_snclr_pretraining_only(stale_jobs):
    assert stale_jobs["src/sempos/memory_bank.py"] == {"pretrain-fmnist-nnclr-seed0", "pretrain-fmnist-snclr-seed0"}
    data_jobs = {"download-fmnist", "download-digits", "prepare-fmnist", "prepare-digits"}
    for f, jobs in stale_jobs.items():
        if f.startswith("src/sempos/train/"):
            assert not jobs & data_jobs, f


@pytest.mark.slow
def test_static_closure_holds_every_module_a_stage_loads():
    """Import each stage module (and each algorithm) in a fresh interpreter state: what Python actually loads
    must be inside the closure (the closure may hold more: imports inside functions that did not run)."""
    code = r"""
import importlib, json, sys
import torch, numpy, pandas, sklearn, matplotlib  # loaded once; only sempos modules are reset
def loaded(name):
    for m in [m for m in sys.modules if m == "sempos" or m.startswith("sempos.")]:
        del sys.modules[m]
    importlib.import_module(name)
    return sorted(m for m in sys.modules if m == "sempos" or m.startswith("sempos."))
names = sys.argv[1:]
print(json.dumps({n: loaded(n) for n in names}))
"""
    from sempos.algos.registry import ALGOS

    names = [s.module for s in STAGES.values()] + [f"sempos.algos.{a}" for a in ALGOS]
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    for name, mods in json.loads(out.stdout).items():
        missing = set(mods) - codedeps.closure(name) - codedeps.NOT_CODE_DEPS
        assert not missing, f"{name} loads {sorted(missing)}, which its closure misses"
