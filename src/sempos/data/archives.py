"""Verified, atomic extraction of downloaded archives (tar, tar.gz/tgz, zip) into data/raw/.extracted/.

An archive is extracted only after its sha256 matches the one the download stage recorded in MANIFEST.json;
an extraction is complete exactly when its marker file exists, so a killed run never leaves a directory that
looks complete. Members with unsafe paths (absolute, "..", links out of the tree) are refused.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..errors import DatasetError
from .checksum import file_digest

# Extractions live in data/raw/.extracted/<name>/<archive stem>/: beside, not inside, the download stage's output
# directory data/raw/<name>/, which DVC and Snakemake track (writing into it would mark download out of date).
EXTRACTED = ".extracted"
MARKER = ".sempos-extracted.json"  # written last inside the extraction: its presence means "complete"
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


def _stem(archive_name: str) -> str:
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        if archive_name.endswith(ext):
            return archive_name[: -len(ext)]
    return archive_name


def _skipped(member: str, skip: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(member, pat) for pat in skip)


def _check_member(name: str, archive: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DatasetError(f"{archive.name} holds an unsafe member path '{name}'; refusing to extract it")


def _unpack(archive: Path, into: Path, skip: Sequence[str]) -> None:
    """Extract `archive` (tar, tar.gz/tgz or zip) into `into`, member by member; corrupt data raises DatasetError."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, archive)
                    if not _skipped(info.filename, skip):
                        zf.extract(info, into)  # reads the member fully: a CRC mismatch raises BadZipFile
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                for member in tf:  # streaming: a truncated gzip stream raises at the point it ends
                    _check_member(member.name, archive)
                    if _skipped(member.name, skip):
                        continue
                    if hasattr(tarfile, "data_filter"):
                        # The "data" filter also refuses links out of the tree, devices and setuid bits.
                        tf.extract(member, into, filter="data")
                    else:  # Python < 3.11.4: only regular files and directories, paths checked above
                        if not (member.isfile() or member.isdir()):
                            raise DatasetError(f"{archive.name}: member '{member.name}' is a link or device")
                        tf.extract(member, into)
        else:
            raise DatasetError(f"{archive.name} is not a readable tar or zip archive (corrupt or truncated)")
    except _CORRUPT as exc:
        raise DatasetError(f"{archive.name} is corrupt or truncated ({type(exc).__name__}: {exc})") from exc


def extract_archive(archive: Path, dest: Path, *, skip: Sequence[str] = (), inner: Sequence[str] = (),
                    stamp: dict | None = None) -> Path:
    """Extract `archive` into directory `dest` atomically and return `dest`.

    Work happens in a hidden sibling `.<dest>.*.partial` directory; MARKER (holding `stamp`) is written last and
    the directory renamed onto `dest`, so `dest` either holds a complete extraction of this very archive or does
    not exist. A `dest` whose marker holds the same stamp is reused; one with another stamp or no marker (an
    extraction of an older archive) is replaced. `skip`: fnmatch patterns of members not to extract (e.g.
    STL-10's 2.6 GB unlabeled split). `inner`: archives inside the archive to extract in place, then delete.
    Assumes one process extracts a given `dest` at a time (one prepare job per dataset).
    """
    archive, dest = Path(archive), Path(dest)
    if stamp is None:
        st = archive.stat()
        stamp = {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    stamp = {**stamp, "skip": sorted(skip), "inner": list(inner)}
    if _marker(dest) == stamp:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*.partial"):  # left by a killed earlier run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _unpack(archive, tmp, skip)
        for rel in inner:
            nested = tmp / rel
            if not nested.is_file():
                raise DatasetError(f"{archive.name} does not contain {rel}; it is not the expected archive")
            _unpack(nested, nested.parent, ())
            nested.unlink()  # the extracted copy is what loaders read; keep the disk footprint down
        (tmp / MARKER).write_text(json.dumps(stamp, sort_keys=True))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except DatasetError as exc:
        raise DatasetError(f"{exc}. Nothing was extracted. Fix: delete {archive} and rerun the download stage "
                           f"(it refetches and verifies the file)") from exc.__cause__
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _marker(dest: Path) -> dict | None:
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _manifest_sha256(raw_dir: Path, name: str) -> str:
    manifest = raw_dir / "MANIFEST.json"
    try:
        files = json.loads(manifest.read_text())["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{manifest} missing or unreadable: run the download stage for '{raw_dir.name}' "
                           "first (it verifies every file and writes the manifest last)") from exc
    if name not in files:
        raise DatasetError(f"{manifest} does not list {name}: rerun the download stage for '{raw_dir.name}'")
    return files[name]


def verified_file(raw_dir: Path, name: str) -> Path:
    """raw_dir/name, checked against the sha256 the download stage recorded after verifying it."""
    raw_dir = Path(raw_dir)
    want = _manifest_sha256(raw_dir, name)
    path = raw_dir / name
    if not path.is_file():
        raise DatasetError(f"{path} is missing: rerun the download stage for '{raw_dir.name}'")
    got = file_digest(path, "sha256")
    if got != want:
        raise DatasetError(f"{path} changed after it was downloaded and verified (sha256 {got[:16]}... vs "
                           f"MANIFEST {want[:16]}...). Fix: delete it and rerun the download stage")
    return path


def extraction_root(raw_dir: Path) -> Path:
    """Where the archives of the dataset downloaded to raw_dir (data/raw/<name>) are extracted."""
    raw_dir = Path(raw_dir)
    return raw_dir.parent / EXTRACTED / raw_dir.name


def extracted(raw_dir: Path, archive_name: str, *, skip: Sequence[str] = (), inner: Sequence[str] = ()) -> Path:
    """The extraction of a downloaded archive: reused if complete for the manifest's sha256, else made now."""
    raw_dir = Path(raw_dir)
    stamp = {"archive": archive_name, "sha256": _manifest_sha256(raw_dir, archive_name)}
    dest = extraction_root(raw_dir) / _stem(archive_name)
    if _marker(dest) == {**stamp, "skip": sorted(skip), "inner": list(inner)}:
        return dest
    return extract_archive(verified_file(raw_dir, archive_name), dest, skip=skip, inner=inner, stamp=stamp)
