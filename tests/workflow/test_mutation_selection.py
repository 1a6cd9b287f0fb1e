"""`make mutation` sees every test of the modules it mutates: a test file missing from pyproject.toml's
selection never judges a mutant (SimSiam's head test was missed that way), however good it is."""

import tomllib
from pathlib import Path

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
