"""File and content checksums (gzip files are also checked by their decompressed bytes)."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

CHUNK = 1 << 20


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def gunzip_sha256(path: Path) -> str | None:
    """sha256 of the decompressed bytes, or None when the file is not a complete gzip stream."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()
