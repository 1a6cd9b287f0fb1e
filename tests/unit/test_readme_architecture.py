"""README's architecture section names every module and package of src/sempos/ and every top-level folder."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def architecture_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Architecture", 1)[1]
    return re.search(r"```\n(.*?)```", section, re.S).group(1)


def test_every_module_and_package_is_described():
    block = architecture_block()
    src = REPO / "src" / "sempos"
    names = [p.name for p in src.glob("*.py") if p.name != "__init__.py"]
    names += [f"{p.name}/" for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    missing = [n for n in sorted(names) if not re.search(rf"(^|\s){re.escape(n)}", block, re.M)]
    assert not missing, f"README's architecture section does not mention {missing}"


def test_every_top_level_folder_is_described():
    block = architecture_block()
    tracked = [p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name not in {"src", "data", "runs", "results", "features", "pairs", "logs", "build"}
               and not p.name.endswith(".egg-info")]
    missing = [n for n in sorted(tracked) if f"{n}/" not in block]
    assert not missing, f"README's architecture section does not mention {missing}"
