"""No import circle in src/sempos: module-level imports form a DAG (docs/design.md: dependencies one way)."""

import ast
from pathlib import Path

from sempos.codedeps import PACKAGE_DIR, module_file

PKG = "sempos"


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _resolve(module: str, is_pkg: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if level:
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([target] if target else []))
    return target or ""


def top_level_imports(path: Path) -> set[str]:
    """Package modules imported when the module is imported: statements at module level, not in functions
    (a function-level import runs later, after both modules exist) and not under `if TYPE_CHECKING`."""
    name, is_pkg = _name(path), path.name == "__init__.py"
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        stmts = [node] + ([n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                          if isinstance(node, (ast.If, ast.Try)) else [])
        for st in stmts:
            if isinstance(st, ast.Import):
                out |= {a.name for a in st.names if a.name.startswith(PKG)}
            elif isinstance(st, ast.ImportFrom):
                mod = _resolve(name, is_pkg, st.level, st.module)
                if not mod.startswith(PKG):
                    continue
                for a in st.names:  # `from pkg import sub` imports the submodule when it is one
                    sub = f"{mod}.{a.name}"
                    out.add(sub if module_file(sub) is not None else mod)
    return {m for m in out if m != name}


def graph() -> dict[str, set[str]]:
    return {_name(p): top_level_imports(p) for p in PACKAGE_DIR.rglob("*.py")}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_finds_a_planted_circle_and_passes_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_relative_and_submodule_imports():
    g = graph()
    assert "sempos.errors" in g["sempos.config"]                 # from .errors import ConfigError
    assert "sempos.models.checkpoint" in g["sempos.stages.embed"]  # from ..models.checkpoint import ...
    assert len(g) > 80


def test_src_has_no_import_circle():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_empty_source_file():
    # DVC warns once per empty dependency file on every command (`'.../__init__.py' is empty`).
    empty = [str(p.relative_to(PACKAGE_DIR)) for p in PACKAGE_DIR.rglob("*.py") if p.stat().st_size == 0]
    assert not empty, f"empty source files (DVC warns about each): {empty}"
