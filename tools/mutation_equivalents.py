"""Equivalent mutants, listed by what they change (tools/mutation_equivalents.yaml), so a campaign skips them.

mutmut numbers a function's mutants in order, so `push__mutmut_14` names another mutant as soon as the function
is edited. An entry here names the function and the exact lines the mutant removes and adds (stripped), which
stays true until those lines change; `stale()` finds entries whose removed lines are no longer in the source.
A listed mutant is marked "skipped" (mutmut's exit code 34) right after mutmut generates the mutants
(tools/mutmut_run.py), so it costs nothing and counts neither as killed nor as survived. Each entry carries a
reason; `make mutation EQUIVALENTS=check` runs only them, to confirm that each still survives.

    python tools/mutation_equivalents.py --extract NAME...   # YAML entries for survivors of the last run
    python tools/mutation_equivalents.py --stale             # entries that no longer match the source
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

LIST = Path(__file__).with_name("mutation_equivalents.yaml")
SKIPPED = 34  # mutmut's exit code for "skipped"


@dataclass(frozen=True)
class Change:
    function: str  # mangled, as in mutant names: sempos.memory_bank.xǁMemoryBankǁpush
    removed: tuple[str, ...]
    added: tuple[str, ...]


def _functions(path: Path, module: str) -> dict[str, list[str]]:
    """Source lines of every function and method in `path`, by mangled name with the module prefix."""
    text = path.read_text()
    lines = text.splitlines()
    found = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[f"{module}.{node.name}"] = lines[node.lineno - 1:node.end_lineno]
    return found


def _module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _diff(orig: list[str], mutant: list[str], orig_name: str, mutant_name: str) -> tuple[tuple, tuple]:
    a = [line.replace(orig_name, "FN").strip() for line in orig]
    b = [line.replace(mutant_name, "FN").strip() for line in mutant]
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += a[i1:i2]
            added += b[j1:j2]
    return tuple(removed), tuple(added)


def mutant_changes(mutants_src: Path) -> dict[str, Change]:
    """What each generated mutant changes, by mutant name, read from mutmut's copy of the sources."""
    changes = {}
    for path in sorted(mutants_src.rglob("*.py")):
        module = _module_of(path, mutants_src)
        functions = _functions(path, module)
        for name, body in functions.items():
            stem, sep, number = name.rpartition("__mutmut_")
            if not sep or not number.isdigit() or f"{stem}__mutmut_orig" not in functions:
                continue
            local = len(module) + 1  # the name as defined in the file, without the module prefix
            removed, added = _diff(functions[f"{stem}__mutmut_orig"], body, f"{stem}__mutmut_orig"[local:],
                                   name[local:])
            changes[name] = Change(stem, removed, added)
    return changes


def load(path: Path = LIST) -> tuple[dict[str, str], list[dict]]:
    data = yaml.safe_load(path.read_text())
    reasons, entries = data["reasons"], data["mutants"]
    unknown = sorted({e["reason"] for e in entries} - set(reasons))
    if unknown:
        sys.exit(f"{path}: reasons {unknown} are not defined under 'reasons:'")
    return reasons, entries


def _key(entry: dict) -> Change:
    return Change(entry["function"], tuple(entry.get("removed", ())), tuple(entry.get("added", ())))


def listed(changes: dict[str, Change], entries: list[dict]) -> dict[str, str]:
    """Mutant name -> reason, for every generated mutant that an entry describes."""
    reason_by_change = {_key(e): e["reason"] for e in entries}
    return {name: reason_by_change[c] for name, c in changes.items() if c in reason_by_change}


def unmatched(changes: dict[str, Change], entries: list[dict]) -> list[dict]:
    """Entries that describe no generated mutant: their lines were edited, or mutmut mutates them differently."""
    present = set(changes.values())
    return [e for e in entries if _key(e) not in present]


def mark_skipped(mutants_dir: Path, names: set[str], *, all_but: bool = False) -> int:
    """Give the named mutants (all_but: every other mutant) mutmut's "skipped" status in its .meta files, before
    any of them runs."""
    marked = 0
    for meta in (mutants_dir / "src").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        hit = [n for n in codes if (n in names) != all_but]
        for n in hit:
            codes[n] = SKIPPED
        if hit:
            meta.write_text(json.dumps(data, indent=4))
            marked += len(hit)
    return marked


def stale(entries: list[dict], src: Path) -> list[dict]:
    """Entries whose removed lines are no longer all in their function's source (it was edited or renamed)."""
    functions = {}

    def add(mangled: str, node: ast.FunctionDef, lines: list[str]) -> None:
        body = [line.strip() for line in lines[node.lineno - 1:node.end_lineno]]
        body[0] = body[0].replace(f"def {node.name}(", "def FN(", 1)  # as _diff names every version
        functions[mangled] = set(body)

    for path in src.rglob("*.py"):
        module = _module_of(path, src)
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        add(f"{module}.xǁ{node.name}ǁ{item.name}", item, lines)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                add(f"{module}.x_{node.name}", node, lines)
    return [e for e in entries
            if e["function"] not in functions or not set(e.get("removed", ())) <= functions[e["function"]]]


def _extract(names: list[str], mutants_src: Path) -> str:
    changes = mutant_changes(mutants_src)
    missing = [n for n in names if n not in changes]
    if missing:
        sys.exit(f"no such mutant in {mutants_src}: {missing}")
    rows = [{"function": changes[n].function, "reason": "TODO", "removed": list(changes[n].removed),
             "added": list(changes[n].added)} for n in names]
    return yaml.safe_dump(rows, allow_unicode=True, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", nargs="+", metavar="NAME", help="print YAML entries for these mutants")
    ap.add_argument("--stale", action="store_true", help="list entries that no longer match src/")
    ap.add_argument("--mutants", default="mutants/src", help="mutmut's copy of the sources (default %(default)s)")
    args = ap.parse_args(argv)
    if args.extract:
        print(_extract(args.extract, Path(args.mutants)), end="")
    if args.stale:
        old = stale(load()[1], Path("src"))
        for e in old:
            print(f"stale: {e['function']}: {e.get('removed')}")
        return 1 if old else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
