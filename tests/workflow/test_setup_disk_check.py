"""`make setup` refuses to start a venv it has no room for (a CI run once stopped half-way inside pip with
"No space left on device"): the error names the space needed, the space there is and the fix, and nothing is
left behind that could pass for an installed venv."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The venv's rule in a bare copy of the Makefile, where no venv exists yet."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    return subprocess.run(["make", "--no-print-directory", *args, ".venv/.sempos-installed"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_setup_without_room_for_the_venv_stops_before_creating_it(tmp_path):
    result = _make(tmp_path, "MIN_FREE_GB=100000000", "PYTHON=false")  # a missed check fails fast
    assert result.returncode != 0
    assert "setup needs 100000000 GiB free for .venv" in result.stderr
    assert "free some space (or set MIN_FREE_GB=N" in result.stderr
    assert not (tmp_path / ".venv").exists()


def test_setup_with_room_goes_on_to_create_the_venv(tmp_path):
    plan = _make(tmp_path, "-n", "MIN_FREE_GB=0")
    assert plan.returncode == 0
    # the check runs first; the stamp is touched only after every install step
    lines = plan.stdout.splitlines()
    assert "df -Pk ." in lines[0] and lines[-1] == "touch .venv/.sempos-installed"
    result = _make(tmp_path, "MIN_FREE_GB=0", "PYTHON=false")  # passes the check, then stops at `venv`
    assert "setup needs" not in result.stderr
    assert result.returncode != 0 and not (tmp_path / ".venv").exists()
