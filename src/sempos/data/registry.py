"""One registry of datasets: name, files, checksums per source, offline sources, loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DatasetError
from .checksum import file_digest, gunzip_sha256


@dataclass(frozen=True)
class RemoteFile:
    """A file and every checksum that identifies a good copy of it.

    Sources differ in bytes (Debian re-gzips Fashion-MNIST), so a copy is good when its own md5/sha256
    matches a published one OR its decompressed content matches a known content sha256.
    """

    name: str
    urls: tuple[str, ...] = ()
    md5: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()
    content_sha256: tuple[str, ...] = ()

    def verify(self, path: Path) -> bool:
        if not path.is_file():
            return False
        if self.md5 and file_digest(path, "md5") in self.md5:
            return True
        if self.sha256 and file_digest(path, "sha256") in self.sha256:
            return True
        if self.content_sha256 and self.name.endswith(".gz"):
            return gunzip_sha256(path) in self.content_sha256
        return False


@dataclass(frozen=True)
class Arrays:
    """A prepared image-classification dataset: uint8 NCHW images and int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    unlabeled_x: np.ndarray | None = None  # extra pretraining images without labels (STL-10's unlabeled split)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    loader: Callable[[Path], Arrays]
    local_dirs: tuple[Path, ...] = ()
    local_hint: str = ""
    extras: dict = field(default_factory=dict)


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> DatasetSpec:
    from . import datasets  # noqa: F401  (registers the built-in datasets)

    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset '{name}'; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    from . import datasets  # noqa: F401

    return sorted(_REGISTRY)
