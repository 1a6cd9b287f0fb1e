"""Per-module mutation score from `mutmut results --all true` (read on stdin), as markdown.

Score = killed / mutants checked. A timeout counts as killed (the mutant made the tests hang or run 15x longer:
they noticed); "no tests" and "survived" count against the score. Mutants a stopped run did not reach ("not
checked") and the equivalent mutants that tools/mutation_equivalents.yaml lists (mutmut's "skipped", not run)
are counted apart. Below the table: the survivors grouped by function and, with
`--times mutants/mutant-times.tsv` (written by tests/conftest.py under each mutant), where the time went.
`--check-equivalents mutants/equivalents.txt` reports instead on a run of only the listed equivalents
(make mutation EQUIVALENTS=check): each should survive, and a killed one is not equivalent after all.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
NOT_COUNTED = {"skipped", "not checked"}
LINE = re.compile(r"\s*([\w.ǁ]+)__mutmut_(\d+): (.+?)\s*$")


def module_of(function: str) -> str:
    return function.split(".x_")[0].split(".xǁ")[0]


def parse(lines) -> list[tuple[str, int, str]]:
    """(mangled function, mutant number, status) for every mutant line."""
    return [(m[1], int(m[2]), m[3]) for m in map(LINE.match, lines) if m]


def score_table(results: list[tuple[str, int, str]]) -> str:
    by_module: dict[str, Counter] = defaultdict(Counter)
    for function, _, status in results:
        by_module[module_of(function)][status] += 1
    total = Counter()
    rows = ["| module | checked | killed | survived | no tests | timeout | listed equivalent | not reached | score |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for module in sorted(by_module):
        total.update(by_module[module])
        rows.append(_row(module, by_module[module]))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def survivors(results: list[tuple[str, int, str]]) -> str:
    """One line per function: how many of its mutants lived, and which (numbers as `mutmut show` takes them)."""
    left: dict[tuple[str, str], list[int]] = defaultdict(list)
    for function, number, status in results:
        if status not in KILLED and status not in NOT_COUNTED:
            left[(function, status)].append(number)
    return "\n".join(f"- `{f}` {status}: {len(n)} (__mutmut_{', _'.join(map(str, sorted(n)))})"
                     for (f, status), n in sorted(left.items()))


def time_table(lines, top: int = 10) -> str:
    """Seconds spent inside pytest per function's mutants (mutant name, seconds, exit status, tests)."""
    spent: Counter = Counter()
    count: Counter = Counter()
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 4 and "__mutmut_" in parts[0]:
            function = parts[0].rsplit("__mutmut_", 1)[0]
            spent[function] += float(parts[1])
            count[function] += 1
    rows = [f"{sum(count.values())} mutants, {sum(spent.values()):.0f} s inside pytest in all",
            "", "| function | mutants | seconds |", "|---|---:|---:|"]
    rows += [f"| `{f}` | {count[f]} | {s:.0f} |" for f, s in spent.most_common(top)]
    return "\n".join(rows)


def equivalents_check(results: list[tuple[str, int, str]], listed_lines) -> str:
    """How the listed equivalent mutants fared when run: per reason, and each one that did not survive."""
    reason_by_name = dict(line.rstrip("\n").split("\t") for line in listed_lines if line.strip())
    status_by_name = {f"{f}__mutmut_{n}": status for f, n, status in results}
    by_reason: dict[str, Counter] = defaultdict(Counter)
    for name, reason in reason_by_name.items():
        status = status_by_name.get(name)
        by_reason[reason]["killed" if status in KILLED else "survived" if status == "survived" else "other"] += 1
    total = sum(by_reason.values(), Counter())
    rows = [f"{len(reason_by_name)} listed equivalent mutants: {total['survived']} survived (equivalent as "
            f"listed), {total['killed']} killed (not equivalent), {total['other']} neither (not reached or no tests)",
            "", "| reason | listed | survived | killed | other |", "|---|---:|---:|---:|---:|"]
    rows += [f"| {r} | {c.total()} | {c['survived']} | {c['killed']} | {c['other']} |" for r, c in sorted(by_reason.items())]
    odd = [f"- `{n}` {status_by_name.get(n, 'not generated')} ({r})" for n, r in sorted(reason_by_name.items())
           if status_by_name.get(n) != "survived"]
    if odd:
        rows += ["", "Did not survive (a killed one is not equivalent: drop its entry, its killing test stays):", "",
                 *odd]
    return "\n".join(rows)


def _row(name: str, c: Counter) -> str:
    counted = sum(c.values()) - sum(c[s] for s in NOT_COUNTED)
    killed = sum(c[s] for s in KILLED)
    score = f"{100.0 * killed / counted:.1f} %" if counted else "–"
    return (f"| {name} | {counted} | {killed} | {c['survived']} | {c['no tests']} | {c['timeout']} | "
            f"{c['skipped']} | {c['not checked']} | {score} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--times", help="mutants/mutant-times.tsv: add where the time went")
    ap.add_argument("--check-equivalents", metavar="LISTED",
                    help="mutants/equivalents.txt: report on a run of only the listed equivalents instead")
    args = ap.parse_args(argv)
    results = parse(sys.stdin)
    if not results:
        print("no mutant results on stdin: run `mutmut run` first (make mutation)", file=sys.stderr)
        return 1
    if args.check_equivalents:
        with open(args.check_equivalents) as f:
            print(equivalents_check(results, f))
        return 0
    print(score_table(results))
    listed = survivors(results)
    if listed:
        print("\nSurvivors (by function):\n\n" + listed)
    if args.times:
        try:
            with open(args.times) as f:
                print("\nTime:\n\n" + time_table(f))
        except OSError as e:
            print(f"\n(no time log: {e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
