"""The dataset catalog: an explicit name -> spec dict, no registration by import, no import circle in data/."""

import ast
from pathlib import Path

import pytest

from sempos.data import catalog
from sempos.data.spec import DatasetSpec
from sempos.errors import DatasetError

DATA = Path(__file__).resolve().parents[3] / "src" / "sempos" / "data"


def test_catalog_is_an_explicit_dict_of_specs_named_by_their_keys():
    assert catalog.CATALOG and all(isinstance(s, DatasetSpec) and s.name == n for n, s in catalog.CATALOG.items())
    assert catalog.names() == sorted(catalog.CATALOG)
    assert catalog.get("cifar10") is catalog.CATALOG["cifar10"]
    with pytest.raises(DatasetError, match="unknown dataset 'cifar11'.*cifar10"):
        catalog.get("cifar11")
    assert catalog.TRANSFER_SETS == ("cifar10", "cifar100", "stl10", "food101", "flowers102", "pets", "dtd",
                                     "caltech101", "aircraft", "cars", "voc2007")
    assert catalog.detection_sets() == ["voc0712"] and catalog.get("voc0712").kind == "detection"
    assert "fmnist_heldout" in catalog.transfer_targets() and "voc0712" not in catalog.transfer_targets()
    assert catalog.dataset_of_target("fmnist_heldout") == "fmnist" and catalog.metric_of("fmnist_heldout") == "top1"


def _imports(path: Path) -> set[str]:
    """sempos.data modules (dotted, relative to sempos.data) that `path` imports at module level or inside functions."""
    pkg = path.relative_to(DATA).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(pkg)[: len(pkg) - (node.level - 1)] if node.level > 1 else list(pkg)
            if node.level - 1 > len(pkg):
                continue  # above sempos.data (sempos.errors, sempos.io)
            mod = base + (node.module.split(".") if node.module else [])
            names = [a.name for a in node.names]
            for n in names:  # `from . import x` imports module x; `from .x import y` imports module x
                cand = ".".join(mod + [n])
                out.add(cand if (DATA / Path(*mod, n)).with_suffix(".py").exists() or (DATA / Path(*mod, n)).is_dir()
                        else ".".join(mod))
    return {m for m in out if m}


def test_no_import_circle_among_data_modules():
    graph = {}
    for path in DATA.rglob("*.py"):
        rel = path.relative_to(DATA).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[name] = {m.removesuffix(".__init__") for m in _imports(path)}
    assert "catalog" in graph["download"] and "loaders.voc" in graph["catalog"]  # the graph is read at all
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail(f"import circle: {' -> '.join(stack[stack.index(nxt):] + [nxt])}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # Loaders never reach back to the catalog: importing one cannot register or build anything else.
    assert not any("catalog" in deps for name, deps in graph.items() if name.startswith("loaders"))
