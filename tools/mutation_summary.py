"""Per-module mutation score from `mutmut results --all true` (read on stdin), as a markdown table.

Score = killed / (mutants checked - skipped). A timeout counts as killed (the mutant made the tests hang or
run 15x longer: they noticed); "no tests" and "survived" count against the score. Mutants a stopped run did
not reach ("not checked") are counted apart. Survivors are listed below the table.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def main() -> int:
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors: list[str] = []
    for line in sys.stdin:
        m = re.match(r"\s*([\w.ǁ]+__mutmut_\d+): (.+?)\s*$", line)
        if not m:
            continue
        name, status = m.groups()
        module = name.split(".x_")[0].split(".xǁ")[0]
        by_module[module][status] += 1
        if status not in KILLED and status not in ("skipped", "not checked"):
            survivors.append(f"{name}: {status}")
    total = Counter()
    print("| module | checked | killed | survived | no tests | timeout | not reached | score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for module in sorted(by_module):
        c = by_module[module]
        total.update(c)
        print(_row(module, c))
    print(_row("**all**", total))
    if survivors:
        print("\nSurvivors:\n")
        print("\n".join(f"- `{s}`" for s in survivors))
    return 0


def _row(name: str, c: Counter) -> str:
    counted = sum(c.values()) - c["skipped"] - c["not checked"]
    killed = sum(c[s] for s in KILLED)
    score = f"{100.0 * killed / counted:.1f} %" if counted else "–"
    return (f"| {name} | {counted} | {killed} | {c['survived']} | {c['no tests']} | {c['timeout']} | "
            f"{c['not checked']} | {score} |")


if __name__ == "__main__":
    raise SystemExit(main())
