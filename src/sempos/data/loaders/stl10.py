"""STL-10 (Coates et al. 2011): the binary archive; labelled train/test, optionally the unlabeled split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ..archives import extracted
from ..images import resize_array
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays, lines


def load(raw: Path, size: int = 64, resize: str = "center_crop", unlabeled: bool = False) -> Arrays:
    """train/test (labelled); with `unlabeled`, also the 100,000-image unlabeled split (pretraining only)."""
    skip = () if unlabeled else ("*/unlabeled_X.bin",)
    root = extracted(Path(raw), "stl10_binary.tar.gz", skip=skip) / "stl10_binary"

    def images(split):
        # Column-major 96x96 planes, as torchvision reads them.
        raw_x = np.fromfile(root / f"{split}_X.bin", dtype=np.uint8)
        if raw_x.size % (3 * 96 * 96):
            raise DatasetError(f"{root / f'{split}_X.bin'} holds {raw_x.size} bytes, not a whole number of 3x96x96 "
                               "images: the extraction is incomplete; delete data/raw/stl10 and download again")
        return resize_array(raw_x.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), size, resize)

    def part(split):
        y = np.fromfile(root / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1  # labels are 1-based
        return images(split), y

    (tx, ty), (vx, vy) = part("train"), part("test")
    out = arrays(tx, ty, vx, vy, lines(root / "class_names.txt"))
    return dataclasses.replace(out, unlabeled_x=images("unlabeled")) if unlabeled else out


SPEC = transfer_spec(
    "stl10", "STL-10 (Coates et al. 2011): 5k/8k labelled 96x96 RGB, 10 classes",
    [remote_file("stl10_binary.tar.gz", ["http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"],
                 md5="91f7769df0f17e558f3565bffb0c7dfb")],
    load, "top1", "train 5,000 / test 8,000 (unlabeled split not loaded)", 10, 64)
