"""Which source files a job runs: the static import closure of its stage module inside the sempos package.

Snakemake's code trigger sees only a rule's own text and DVC sees only the deps it is given, so the stage
table lists, for every job, the files its command imports:
  * every `import` / `from ... import` statement of a module, also inside functions (a lazy import runs
    when that code path runs, so it counts), relative imports resolved;
  * the `__init__.py` of every package on the way (importing a.b.c executes a/__init__ and a/b/__init__);
  * a package's lazy re-exports (`_EXPORTS = {"name": "submodule"}` with a module `__getattr__`, as in
    sempos.mining): `from pkg import name` counts as importing that submodule; `import pkg` as all of them.
Imports by computed name (importlib.import_module(f"...{x}")) cannot be seen here; the stage table names
them per job (`Stage.modules`, e.g. the algorithm module a method's `algo` loads).

One module is left out on purpose: `sempos.pipeline`, the stage table itself. What a job takes from it —
its input and output paths, the params sections it reads, its command — is exactly what Snakemake and DVC
already record for that job, so an edit of the table reruns the jobs it changes and no others. (The
modules pipeline imports stay in the closure.)
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "sempos"
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
NOT_CODE_DEPS = frozenset({"sempos.pipeline"})


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module `name` (dotted, starting with the package name), or None if there is none."""
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_package(name: str, package_dir: Path) -> bool:
    f = module_file(name, package_dir)
    return f is not None and f.name == "__init__.py"


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _lazy_exports(package: str, package_dir: Path) -> dict[str, str]:
    """`_EXPORTS` of a package __init__: attribute name -> submodule (absolute dotted name)."""
    f = module_file(package, package_dir)
    if f is None or f.name != "__init__.py":
        return {}
    for node in _parse(f).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}
            return {k: f"{package}.{v}" for k, v in value.items()}
    return {}


@functools.lru_cache(maxsize=None)
def direct_imports(name: str, package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """Modules of the package that module `name` imports anywhere in its source (not followed further).
    Cached like `_parse`: every closure walks its modules' syntax trees again otherwise (a DAG asks for
    dozens of closures, and mutmut's mutated sources are 25x larger than these)."""
    path = module_file(name, package_dir)
    if path is None:
        raise ModuleNotFoundError(f"no module {name} under {package_dir}")
    pkg = package_dir.name
    # The package a relative import starts from: the module's own package (itself for an __init__).
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(mod: str, attr: str | None = None) -> None:
        exports = _lazy_exports(mod, package_dir)
        if attr is not None and module_file(f"{mod}.{attr}", package_dir) is not None:
            found.add(f"{mod}.{attr}")
        elif attr is not None and attr in exports:
            found.add(exports[attr])
        elif attr is None and exports:
            found.update(exports.values())
        if module_file(mod, package_dir) is not None:
            found.add(mod)

    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == pkg or alias.name.startswith(pkg + "."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not (base == pkg or base.startswith(pkg + ".")):
                continue
            for alias in node.names:
                add(base, None if alias.name == "*" else alias.name)
    found.discard(name)
    return frozenset(found)


def _with_parents(name: str, package_dir: Path) -> set[str]:
    """The module and every package above it (their __init__ runs on import)."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@functools.lru_cache(maxsize=None)
def closure(name: str, package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """Every module of the package that importing `name` and running its code can import."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        for m in _with_parents(mod, package_dir):
            if m in seen or module_file(m, package_dir) is None:
                continue
            seen.add(m)
            todo.extend(direct_imports(m, package_dir) - seen)
    return frozenset(seen)


def code_files(modules: tuple[str, ...], package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Repository-relative source files of the closure of `modules`, minus NOT_CODE_DEPS, sorted."""
    mods: set[str] = set()
    for m in modules:
        mods |= closure(m, package_dir)
    root = package_dir.parents[1]
    files = {module_file(m, package_dir) for m in mods if m not in NOT_CODE_DEPS}
    return sorted(str(f.relative_to(root)) for f in files if f is not None)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_digests(modules: tuple[str, ...], package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """{file: sha256 prefix} of the closure: what Snakemake records per job to rerun it when one changes."""
    root = package_dir.parents[1]
    return {f: file_sha256(root / f)[:16] for f in code_files(modules, package_dir)}


@functools.lru_cache(maxsize=None)
def computed_imports(package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """Modules that call importlib.import_module / __import__ (their targets are invisible to `closure`)."""
    pkg = package_dir.name
    out = set()
    for f in sorted(package_dir.rglob("*.py")):
        rel = f.relative_to(package_dir.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(_parse(f)):
            if isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
                if called in ("import_module", "__import__"):
                    out.add(name)
    assert all(n.startswith(pkg) for n in out)
    return frozenset(out)
