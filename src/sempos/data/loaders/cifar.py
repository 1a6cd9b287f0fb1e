"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): the python-pickle archives, md5s pinned by torchvision."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np

from ..archives import extracted
from ..images import resize_array
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays

_TORONTO = "https://www.cs.toronto.edu/~kriz/"


def _unpickle(path: Path) -> dict:
    # CIFAR ships as Python pickles; the archive was verified against torchvision's md5 before extraction.
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _cifar(raw: Path, size: int, resize: str, archive: str, folder: str, train: Sequence[str], test: Sequence[str],
           label_key: str, meta: str, names_key: str) -> Arrays:
    root = extracted(raw, archive) / folder

    def part(files):
        xs, ys = [], []
        for f in files:
            d = _unpickle(root / f)
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(d[label_key])
        return resize_array(np.concatenate(xs), size, resize), ys

    (tx, ty), (vx, vy) = part(train), part(test)
    return arrays(tx, ty, vx, vy, _unpickle(root / meta)[names_key])


def load_cifar10(raw: Path, size: int = 32, resize: str = "center_crop") -> Arrays:
    return _cifar(Path(raw), size, resize, "cifar-10-python.tar.gz", "cifar-10-batches-py",
                  [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta", "label_names")


def load_cifar100(raw: Path, size: int = 32, resize: str = "center_crop") -> Arrays:
    return _cifar(Path(raw), size, resize, "cifar-100-python.tar.gz", "cifar-100-python", ["train"], ["test"],
                  "fine_labels", "meta", "fine_label_names")


CIFAR10 = transfer_spec(
    "cifar10", "CIFAR-10 (Krizhevsky 2009): 50k/10k 32x32 RGB, 10 classes",
    [remote_file("cifar-10-python.tar.gz", [_TORONTO + "cifar-10-python.tar.gz"],
                 md5="c58f30108f718f92721af3b95e74349a")],
    load_cifar10, "top1", "train 50,000 / test 10,000", 10, 32)
CIFAR100 = transfer_spec(
    "cifar100", "CIFAR-100 (Krizhevsky 2009): 50k/10k 32x32 RGB, 100 fine classes",
    [remote_file("cifar-100-python.tar.gz", [_TORONTO + "cifar-100-python.tar.gz"],
                 md5="eb9058c3a382ffc7106e4002c42a8d85")],
    load_cifar100, "top1", "train 50,000 / test 10,000 (fine labels)", 100, 32)
