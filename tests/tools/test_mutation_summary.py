"""tools/mutation_summary.py: the score `make mutation` prints and docs/results.md records."""

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "mutation_summary.py"

RESULTS = """\
    sempos.losses.x_nt_xent__mutmut_1: killed
    sempos.losses.x_nt_xent__mutmut_2: survived
    sempos.losses.x_nt_xent__mutmut_3: timeout
    sempos.losses.x_nt_xent__mutmut_7: survived
    sempos.algos.base.xǁAlgorithmǁforward__mutmut_1: no tests
    sempos.algos.base.xǁAlgorithmǁforward__mutmut_2: killed
    sempos.algos.base.xǁAlgorithmǁforward__mutmut_3: not checked
    sempos.algos.base.xǁAlgorithmǁforward__mutmut_4: skipped
"""


def _run(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], input=stdin, capture_output=True, text=True)


def test_score_counts_timeouts_as_kills_and_no_tests_against_and_leaves_unreached_apart(tmp_path):
    times = tmp_path / "mutant-times.tsv"
    times.write_text("sempos.losses.x_nt_xent__mutmut_1\t0.250\t1\t3\n"
                     "sempos.losses.x_nt_xent__mutmut_2\t1.500\t0\t3\n"
                     "sempos.algos.base.xǁAlgorithmǁforward__mutmut_2\t0.100\t1\t1\n")
    out = _run(RESULTS, "--times", str(times))
    assert out.returncode == 0, out.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in out.stdout.splitlines() if line.startswith("| ")}
    assert rows["sempos.losses"] == "| sempos.losses | 4 | 2 | 2 | 0 | 1 | 0 | 0 | 50.0 % |"
    assert rows["sempos.algos.base"] == "| sempos.algos.base | 2 | 1 | 0 | 1 | 0 | 1 | 1 | 50.0 % |"
    assert rows["**all**"] == "| **all** | 6 | 3 | 2 | 1 | 1 | 1 | 1 | 50.0 % |"
    assert "- `sempos.losses.x_nt_xent` survived: 2 (__mutmut_2, _7)" in out.stdout
    assert "- `sempos.algos.base.xǁAlgorithmǁforward` no tests: 1 (__mutmut_1)" in out.stdout
    assert "3 mutants, 2 s inside pytest in all" in out.stdout
    assert "| `sempos.losses.x_nt_xent` | 2 | 2 |" in out.stdout


def test_no_results_is_an_error_that_says_what_to_run():
    out = _run("nothing here\n")
    assert out.returncode == 1 and "run `mutmut run` first" in out.stderr


def test_a_check_of_the_listed_equivalents_names_each_one_that_did_not_survive(tmp_path):
    """EQUIVALENTS=check runs only the listed mutants: a killed one is not equivalent and is named with its reason;
    the rest of the campaign (skipped there) is not scored."""
    listed = tmp_path / "equivalents.txt"
    listed.write_text("sempos.losses.x_nt_xent__mutmut_2\tdefault-dim\n"
                      "sempos.losses.x_nt_xent__mutmut_3\tdefault-dim\n"
                      "sempos.losses.x_nt_xent__mutmut_7\tcpu-device\n"
                      "sempos.algos.base.xǁAlgorithmǁforward__mutmut_3\tcpu-device\n")
    out = _run(RESULTS, "--check-equivalents", str(listed))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ("4 listed equivalent mutants: 2 survived (equivalent as listed), 1 killed (not equivalent), "
                        "1 neither (not reached or no tests)")
    assert "| cpu-device | 2 | 1 | 0 | 1 |" in lines and "| default-dim | 2 | 1 | 1 | 0 |" in lines
    assert lines[-2:] == ["- `sempos.algos.base.xǁAlgorithmǁforward__mutmut_3` not checked (cpu-device)",
                          "- `sempos.losses.x_nt_xent__mutmut_3` timeout (default-dim)"]
    assert "| module |" not in out.stdout
