"""tools/mutation_equivalents.py: equivalent mutants are named by what they change, and the list stays true."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import mutation_equivalents as eq  # noqa: E402

# The shape of mutmut's copy of a module: every version of a function, under its mangled name.
MUTATED = '''\
import torch


def x_unit__mutmut_orig(z):
    return torch.nn.functional.normalize(z, dim=1)


def x_unit__mutmut_1(z):
    return torch.nn.functional.normalize(z, )


def x_unit__mutmut_2(z):
    return torch.nn.functional.normalize(z, dim=2)


class Bank:
    def xǁBankǁpush__mutmut_orig(self, z, n=4):
        rows = torch.arange(n, device=z.device)
        return rows

    def xǁBankǁpush__mutmut_1(self, z, n=5):
        rows = torch.arange(n, device=z.device)
        return rows

    def xǁBankǁpush__mutmut_2(self, z, n=4):
        rows = torch.arange(n, device=None)
        return rows
'''


@pytest.fixture
def mutants(tmp_path):
    src = tmp_path / "mutants" / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "mod.py").write_text(MUTATED)
    names = ["pkg.mod.x_unit__mutmut_1", "pkg.mod.x_unit__mutmut_2", "pkg.mod.xǁBankǁpush__mutmut_1",
             "pkg.mod.xǁBankǁpush__mutmut_2"]
    (src / "mod.py.meta").write_text(json.dumps({"exit_code_by_key": dict.fromkeys(names)}))
    return tmp_path / "mutants"


def test_each_mutant_is_described_by_the_lines_it_removes_and_adds(mutants):
    changes = eq.mutant_changes(mutants / "src")
    assert set(changes) == {"pkg.mod.x_unit__mutmut_1", "pkg.mod.x_unit__mutmut_2", "pkg.mod.xǁBankǁpush__mutmut_1",
                            "pkg.mod.xǁBankǁpush__mutmut_2"}
    assert changes["pkg.mod.x_unit__mutmut_1"] == eq.Change(
        "pkg.mod.x_unit", ("return torch.nn.functional.normalize(z, dim=1)",),
        ("return torch.nn.functional.normalize(z, )",))
    # A default-argument mutant changes the def line; the function's own name reads FN in every version.
    assert changes["pkg.mod.xǁBankǁpush__mutmut_1"] == eq.Change(
        "pkg.mod.xǁBankǁpush", ("def FN(self, z, n=4):",), ("def FN(self, z, n=5):",))
    assert changes["pkg.mod.xǁBankǁpush__mutmut_2"].added == ("rows = torch.arange(n, device=None)",)


def test_listed_mutants_are_marked_skipped_and_the_others_left_to_run(mutants):
    entries = [{"function": "pkg.mod.x_unit", "reason": "default-dim",
                "removed": ["return torch.nn.functional.normalize(z, dim=1)"],
                "added": ["return torch.nn.functional.normalize(z, )"]},
               {"function": "pkg.mod.xǁBankǁpush", "reason": "cpu-device",
                "removed": ["rows = torch.arange(n, device=z.device)"], "added": ["rows = torch.arange(n, device=None)"]},
               {"function": "pkg.mod.x_other", "reason": "cpu-device", "removed": ["x"], "added": ["y"]}]
    names = eq.listed(eq.mutant_changes(mutants / "src"), entries)
    assert names == {"pkg.mod.x_unit__mutmut_1": "default-dim", "pkg.mod.xǁBankǁpush__mutmut_2": "cpu-device"}
    assert eq.mark_skipped(mutants, set(names)) == 2
    codes = json.loads((mutants / "src" / "pkg" / "mod.py.meta").read_text())["exit_code_by_key"]
    assert codes == {"pkg.mod.x_unit__mutmut_1": eq.SKIPPED, "pkg.mod.x_unit__mutmut_2": None,
                     "pkg.mod.xǁBankǁpush__mutmut_1": None, "pkg.mod.xǁBankǁpush__mutmut_2": eq.SKIPPED}


def test_a_check_of_the_list_skips_every_mutant_but_the_listed_ones(mutants, monkeypatch, capsys):
    import mutmut_run

    monkeypatch.chdir(mutants.parent)
    entry = {"function": "pkg.mod.xǁBankǁpush", "reason": "cpu-device",
             "removed": ["rows = torch.arange(n, device=z.device)"], "added": ["rows = torch.arange(n, device=None)"]}
    monkeypatch.setattr(eq, "load", lambda: ({"cpu-device": "why"}, [entry]))
    mutmut_run._skip_listed(lambda n: "stats", only_listed=True)(2)
    codes = json.loads((mutants / "src" / "pkg" / "mod.py.meta").read_text())["exit_code_by_key"]
    assert codes == {"pkg.mod.x_unit__mutmut_1": eq.SKIPPED, "pkg.mod.x_unit__mutmut_2": eq.SKIPPED,
                     "pkg.mod.xǁBankǁpush__mutmut_1": eq.SKIPPED, "pkg.mod.xǁBankǁpush__mutmut_2": None}
    assert (mutants / "equivalents.txt").read_text() == "pkg.mod.xǁBankǁpush__mutmut_2\tcpu-device\n"
    mutmut_run._leave_skipped_out(lambda mutant_names: ([], {}))(mutant_names=())
    assert "1 listed equivalent mutants to run, 3 others skipped" in capsys.readouterr().out


def test_the_wrapper_refuses_two_modes_at_once(monkeypatch):
    import mutmut_run

    monkeypatch.setitem(sys.modules, "mutmut.__main__", type(sys)("mutmut.__main__"))  # no real mutmut needed
    monkeypatch.setitem(sys.modules, "mutmut", type(sys)("mutmut"))
    with pytest.raises(SystemExit, match="give one"):
        mutmut_run.main(["--run-equivalents", "--only-equivalents"])


def test_an_entry_whose_lines_left_the_source_is_stale(tmp_path):
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "mod.py").write_text("class Bank:\n    def push(self, z, n=4):\n        return n\n\n\n"
                                "def unit(z):\n    return z\n")
    keep = {"function": "pkg.mod.xǁBankǁpush", "reason": "r", "removed": ["def FN(self, z, n=4):"], "added": []}
    edited = {"function": "pkg.mod.x_unit", "reason": "r", "removed": ["return z * 2"], "added": []}
    gone = {"function": "pkg.mod.x_renamed", "reason": "r", "removed": ["return z"], "added": []}
    assert eq.stale([keep, edited, gone], tmp_path / "src") == [edited, gone]


def test_the_repository_list_gives_every_entry_a_defined_reason_and_matches_the_source():
    """An edit to a listed line makes its entry stale: re-run the campaign and list (or kill) the new survivor."""
    reasons, entries = eq.load()
    assert entries and all(reasons[e["reason"]].strip() for e in entries)
    assert all(e["removed"] or e["added"] for e in entries)
    keys = [eq._key(e) for e in entries]
    assert len(set(keys)) == len(keys), "an entry is listed twice"
    old = eq.stale(entries, REPO / "src")
    assert not old, "stale entries in tools/mutation_equivalents.yaml: " + "; ".join(
        f"{e['function']}: {e['removed']}" for e in old)


def test_an_entry_that_describes_no_generated_mutant_is_reported(mutants):
    present = {"function": "pkg.mod.x_unit", "reason": "r", "removed": ["return torch.nn.functional.normalize(z, dim=1)"],
               "added": ["return torch.nn.functional.normalize(z, )"]}
    absent = {**present, "added": ["return torch.nn.functional.normalize(z, dim=3)"]}
    assert eq.unmatched(eq.mutant_changes(mutants / "src"), [present, absent]) == [absent]


def test_the_campaign_step_marks_listed_mutants_after_generation_and_keeps_them_out_of_named_runs(
        mutants, monkeypatch, capsys):
    import mutmut_run

    monkeypatch.chdir(mutants.parent)
    entry = {"function": "pkg.mod.x_unit", "reason": "default-dim",
             "removed": ["return torch.nn.functional.normalize(z, dim=1)"],
             "added": ["return torch.nn.functional.normalize(z, )"]}
    stale_entry = {**entry, "added": ["gone"]}
    monkeypatch.setattr(eq, "load", lambda: ({"default-dim": "why"}, [entry, stale_entry]))
    generated = []
    assert mutmut_run._skip_listed(lambda n: generated.append(n) or "stats")(2) == "stats" and generated == [2]
    assert (mutants / "equivalents.txt").read_text() == "pkg.mod.x_unit__mutmut_1\tdefault-dim\n"
    meta = mutants / "src" / "pkg" / "mod.py.meta"
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    rows = [(None, name, code) for name, code in codes.items()]
    kept, _ = mutmut_run._leave_skipped_out(lambda mutant_names: (rows, {}))(mutant_names=("pkg.mod.*",))
    assert [name for _, name, _ in kept] == [n for n in codes if n != "pkg.mod.x_unit__mutmut_1"]
    out = capsys.readouterr().out
    assert "1 listed equivalent mutants skipped" in out and "listed but not generated" in out and "gone" in out
    only_listed = [(None, "pkg.mod.x_unit__mutmut_1", eq.SKIPPED)]
    with pytest.raises(SystemExit, match="is a listed equivalent"):
        mutmut_run._leave_skipped_out(lambda mutant_names: (only_listed, {}))(mutant_names=("pkg.mod.x_unit*",))


@pytest.mark.parametrize("mode, flag", [("skip", ""), ("run", " --run-equivalents"), ("check", " --only-equivalents")])
def test_make_mutation_passes_each_mode_to_the_wrapper_and_refuses_others(mode, flag):
    import subprocess

    def plan(value):
        return subprocess.run(["make", "-n", "--no-print-directory", "mutation", f"EQUIVALENTS={value}"], cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    out = plan(mode)
    assert out.returncode == 0, out.stderr
    (wrapper,) = [line for line in out.stdout.splitlines() if "tools/mutmut_run.py" in line]
    assert wrapper.split("tools/mutmut_run.py")[1].split() == [*flag.split(), "\\"]
    assert ("--check-equivalents mutants/equivalents.txt" in out.stdout) == (mode == "check")
    bad = plan("all")
    assert bad.returncode != 0 and "EQUIVALENTS is skip, run or check, not 'all'" in bad.stderr
