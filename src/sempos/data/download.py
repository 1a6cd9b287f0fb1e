"""Fetch a registered dataset's files into data/raw/<name>/, verified; never keep a bad copy.

Order of sources: a verified copy already there, an offline local copy (e.g. a Debian package),
then each URL. A file is written under a temporary name and renamed only once its checksum matches.
"""

from __future__ import annotations

import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ChecksumError, DatasetError
from ..io import atomic_path, save_json
from .checksum import file_digest
from .catalog import get
from .spec import DatasetSpec, RemoteFile

log = logging.getLogger(__name__)
TIMEOUT_S = 60


def _copy_verified(src_desc: str, fill, spec_file: RemoteFile, target: Path, attempts: list[str]) -> bool:
    try:
        with atomic_path(target) as tmp:
            fill(tmp)
            if not spec_file.verify(tmp):
                raise ChecksumError(f"checksum mismatch for {spec_file.name} from {src_desc}")
        return True
    except ChecksumError as exc:
        attempts.append(str(exc))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        attempts.append(f"{src_desc}: {exc}")
    return False


def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out)


def fetch_file(spec: DatasetSpec, spec_file: RemoteFile, raw_dir: Path, urls: tuple[str, ...] | None = None) -> Path:
    target = raw_dir / spec_file.name
    if target.exists():
        if spec_file.verify(target):
            return target
        log.warning("%s fails its checksum (corrupt or truncated); fetching it again", target)
        target.unlink()
    attempts: list[str] = []
    for local in spec.local_dirs:
        src = local / spec_file.name
        if src.is_file() and _copy_verified(str(src), lambda tmp, s=src: shutil.copyfile(s, tmp), spec_file, target, attempts):
            return target
    for url in spec_file.urls if urls is None else urls:
        if _copy_verified(url, lambda tmp, u=url: _download(u, tmp), spec_file, target, attempts):
            return target
    hint = f" Offline: {spec.local_hint}." if spec.local_hint else ""
    tried = "\n  ".join(attempts) or "(no source available)"
    raise DatasetError(
        f"could not get a verified copy of {spec.name}/{spec_file.name}. Tried:\n  {tried}\n"
        f"Fix: connect to the internet, or place the official file at {target}.{hint}"
    )


def fetch_dataset(name: str, raw_root: Path) -> Path:
    """Fetch every file of dataset `name`; write MANIFEST.json last, as the mark of completeness."""
    spec = get(name)
    raw_dir = raw_root / name
    raw_dir.mkdir(parents=True, exist_ok=True)
    files = {f.name: file_digest(fetch_file(spec, f, raw_dir), "sha256") for f in spec.files}
    manifest = raw_dir / "MANIFEST.json"
    save_json({"dataset": name, "description": spec.description, "sha256": files}, manifest)
    return manifest
