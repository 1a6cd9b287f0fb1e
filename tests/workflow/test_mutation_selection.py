"""`make mutation` sees every test of the modules it mutates: a test file missing from pyproject.toml's
selection never judges a mutant (SimSiam's head test was missed that way), however good it is."""

import tomllib
from pathlib import Path

import pytest

from conftest import MUTATION_LEFT_OUT, MUTATION_TESTS

REPO = Path(__file__).resolve().parents[2]


def _selection() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]


def _files_of(prefix: str) -> set[str]:
    path = REPO / "tests" / prefix
    files = path.rglob("test_*.py") if prefix.endswith("/") else [path]
    return {str(f.relative_to(REPO)) for f in files}


def test_every_test_file_of_a_mutated_module_is_selected_or_left_out_with_a_reason():
    selection = _selection()

    def selected(f: str) -> bool:
        return any(f == s.split("::")[0] or f.startswith(s.rstrip("/") + "/") for s in selection)

    files = set().union(*(_files_of(p) for paths in MUTATION_TESTS.values() for p in paths))
    assert all((REPO / f).exists() for f in files), "MUTATION_TESTS names a file that does not exist"
    missing = sorted(f for f in files if not selected(f) and f not in MUTATION_LEFT_OUT)
    assert not missing, f"add to [tool.mutmut] pytest_add_cli_args_test_selection or MUTATION_LEFT_OUT: {missing}"
    assert not [f for f in MUTATION_LEFT_OUT if selected(f)], "a left-out file is selected after all"
    assert all(reason for reason in MUTATION_LEFT_OUT.values())


def test_every_selected_path_exists():
    for s in _selection():
        assert (REPO / s.split("::")[0]).exists(), s


def test_stats_run_costs_count_each_shared_fixture_for_every_test_that_needs_it(tmp_path):
    """The stats run's costs order each mutant's tests (cheapest first, mutmut stops at the first failure):
    a shared fixture built while another test was set up still counts for every test that needs it, once,
    and a fixture that another requests is not counted twice."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('suite_conftest', {str(REPO / 'tests/conftest.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "pytest_fixture_setup, pytest_runtest_logstart = m.pytest_fixture_setup, m.pytest_runtest_logstart\n"
        "pytest_runtest_logreport, pytest_collection_modifyitems = m.pytest_runtest_logreport, "
        "m.pytest_collection_modifyitems\n"
        "pytest_sessionstart, pytest_sessionfinish = m.pytest_sessionstart, m.pytest_sessionfinish\n")
    (tmp_path / "test_fake.py").write_text(
        "import time, pytest\n"
        "@pytest.fixture(scope='session')\n"
        "def slow():\n    time.sleep(0.6)\n"
        "@pytest.fixture(scope='module')\n"
        "def built(slow):\n    time.sleep(0.3)\n"
        "@pytest.fixture\n"
        "def each():\n    time.sleep(0.15)\n"
        "def test_first(built): pass\n"
        "def test_session_only(slow): pass\n"
        "def test_own_and_session(each, slow): pass\n"
        "def test_free(): pass\n")
    env = {**os.environ, "MUTANT_UNDER_TEST": "stats"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_fake.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    cost = {k.split("::")[1]: v for k, v in json.loads((tmp_path / "mutation-test-durations.json").read_text()).items()}
    assert cost["test_first"] == pytest.approx(0.9, abs=0.2)          # module fixture + the session one it asks for
    assert cost["test_session_only"] == pytest.approx(0.6, abs=0.2)   # built for test_first, still its cost
    assert cost["test_own_and_session"] == pytest.approx(0.75, abs=0.2)
    assert cost["test_free"] < 0.1
    assert cost["test_free"] < cost["test_session_only"] < cost["test_own_and_session"] < cost["test_first"]
