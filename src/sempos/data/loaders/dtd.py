"""Describable Textures (Cimpoi et al. 2014): release 1.0.1 with its ten train/val/test partitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archives import extracted
from ..images import load_images
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays, lines


def load(raw: Path, size: int = 64, resize: str = "center_crop", partition: int = 1) -> Arrays:
    """train = train{p} + val{p} (val{p} is `val_idx`), test = test{p}."""
    root = extracted(Path(raw), "dtd-r1.0.1.tar.gz") / "dtd"
    split_lists = {s: lines(root / "labels" / f"{s}{partition}.txt") for s in ("train", "val", "test")}
    classes = sorted({rel.split("/")[0] for rels in split_lists.values() for rel in rels})

    def part(rels):
        return load_images([root / "images" / rel for rel in rels], size, resize), \
            [classes.index(rel.split("/")[0]) for rel in rels]

    (tx, ty), (vx, vy) = part(split_lists["train"] + split_lists["val"]), part(split_lists["test"])
    n_train = len(split_lists["train"])
    return arrays(tx, ty, vx, vy, classes, val_idx=np.arange(n_train, n_train + len(split_lists["val"])))


SPEC = transfer_spec(
    "dtd", "Describable Textures (Cimpoi et al. 2014): 5,640 images, 47 classes",
    [remote_file("dtd-r1.0.1.tar.gz", ["https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"],
                 md5="fff73e5086ae6bdbea199a49dfb8a4c1")],
    load, "top1", "partition 1: train1+val1 3,760 (val1: the validation split) / test1 1,880", 47, 64)
