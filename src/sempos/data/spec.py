"""What a dataset is to sempos: its files with their checksums, and a loader returning uint8 arrays.

Plain data classes only; the catalog (sempos.data.catalog) lists the datasets, sempos.data.loaders builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

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


def remote_file(name: str, urls, md5: str | None = None, sha256: str | None = None) -> RemoteFile:
    """A RemoteFile with one published md5 and/or sha256."""
    return RemoteFile(name=name, urls=tuple(urls), md5=(md5,) if md5 else (), sha256=(sha256,) if sha256 else ())


@dataclass(frozen=True)
class Arrays:
    """A prepared image-classification dataset: uint8 NCHW images and int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    unlabeled_x: np.ndarray | None = None  # extra pretraining images without labels (STL-10's unlabeled split)
    # Positions in train_x of the dataset's official validation split (train_x then holds train + val, as the
    # transfer protocol refits on both); None where the dataset publishes no validation split.
    val_idx: np.ndarray | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    files: tuple[RemoteFile, ...]
    loader: Callable[..., object]  # raw_dir -> Arrays (classification) or a detection index (extras kind)
    local_dirs: tuple[Path, ...] = ()
    local_hint: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def is_transfer(self) -> bool:
        return bool(self.extras.get("transfer"))

    @property
    def kind(self) -> str:
        """'classification' (a loader returning Arrays) or 'detection' (a loader returning box records)."""
        return self.extras.get("kind", "classification")


def transfer_spec(name: str, description: str, files, loader, metric: str, split: str, num_classes: int,
                  image_size: int, local_hint: str = "", **extras) -> DatasetSpec:
    """A transfer-suite dataset (docs/science.md §4.4): its metric, split summary and default stored size."""
    return DatasetSpec(
        name=name, description=description, files=tuple(files), loader=loader,
        local_hint=local_hint or f"place the official files in data/raw/{name}/ (they are checked by checksum)",
        extras={"metric": metric, "split": split, "num_classes": num_classes, "image_size": image_size,
                "multilabel": False, "transfer": True, "checksum": "md5 pinned by torchvision", **extras},
    )
