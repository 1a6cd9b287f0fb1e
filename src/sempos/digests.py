"""sha256 of files and directories, remembered per file by (size, mtime, inode) so big inputs hash once.

Stages compare every input with the digest its producer recorded (sempos.provenance); a prepared ImageNet
or a large feature file would otherwise be re-read by every job that uses it. The cache lives in
.sempos/digests/ (one small JSON per file, written atomically, so concurrent jobs do not clash); an entry
is used only while the file's size, mtime and inode are unchanged, so any rewrite is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

CACHE_DIR = Path(".sempos") / "digests"
CHUNK = 1 << 20
MANIFEST = "MANIFEST.json"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _entry(path: Path) -> Path:
    return CACHE_DIR / (hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:24] + ".json")


def _read(path: Path) -> dict:
    try:
        entry = json.loads(_entry(path).read_text())
    except (OSError, ValueError):
        return {}
    return entry if entry.get("stat") == _stat_key(path) else {}


def _write(path: Path, facts: dict) -> None:
    entry = _entry(path)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".part")
        with os.fdopen(fd, "w") as fh:
            json.dump({"path": str(path.resolve()), "stat": _stat_key(path), **facts}, fh)
        os.replace(tmp, entry)
    except OSError:
        pass  # a read-only checkout: no cache, just hash again next time


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (cached while the file is unchanged)."""
    path = Path(path)
    facts = _read(path)
    if "sha256" not in facts:
        facts = {**facts, "sha256": sha256_file(path)}
        _write(path, facts)
    return facts["sha256"]


def digest(path: str | os.PathLike) -> str:
    """A file's sha256; a directory is its MANIFEST.json's (the download stage's list of verified files),
    or else its listing of names and sizes."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    if (path / MANIFEST).is_file():
        return "manifest:" + file_digest(path / MANIFEST)
    listing = sorted(f"{f.relative_to(path)}:{f.stat().st_size}" for f in path.rglob("*") if f.is_file())
    return "listing:" + hashlib.sha256("\n".join(listing).encode()).hexdigest()


def verdict(path: str | os.PathLike, name: str) -> bool:
    """Whether check `name` already passed on this file as it is now."""
    return bool(_read(Path(path)).get(name))


def remember(path: str | os.PathLike, name: str, value=True) -> None:
    """Note a passed check (or a digest computed elsewhere, name='sha256') for this file as it is now."""
    path = Path(path)
    _write(path, {**_read(path), name: value})
