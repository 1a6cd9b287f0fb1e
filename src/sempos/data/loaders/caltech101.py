"""Caltech-101 (Fei-Fei et al. 2004): 30 training images per class, all 102 folders (Kornblith et al. 2019)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ..archives import extracted
from ..images import load_images
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays


def load(raw: Path, size: int = 64, resize: str = "center_crop", train_per_class: int = 30) -> Arrays:
    root = extracted(Path(raw), "caltech-101.zip", inner=("caltech-101/101_ObjectCategories.tar.gz",),
                     skip=("__MACOSX/*", "caltech-101/Annotations.tar")) / "caltech-101" / "101_ObjectCategories"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rng = np.random.default_rng(0)  # the fixed per-class 30-image draw (Kornblith et al. 2019)
    train, test = [], []
    for c, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() == ".jpg")
        if len(files) <= train_per_class:
            raise DatasetError(f"Caltech-101 class {name} has {len(files)} images, not more than the "
                               f"{train_per_class} training images per class; the extraction is incomplete")
        pick = set(rng.choice(len(files), size=train_per_class, replace=False).tolist())
        for i, f in enumerate(files):
            (train if i in pick else test).append((f, c))
    tx = load_images([f for f, _ in train], size, resize)
    vx = load_images([f for f, _ in test], size, resize)
    return arrays(tx, [c for _, c in train], vx, [c for _, c in test], classes)


SPEC = transfer_spec(
    "caltech101", "Caltech-101 (Fei-Fei et al. 2004): 9,144 images, 101 classes + background",
    [remote_file("caltech-101.zip", ["https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"],
                 md5="3138e1922a9193bfa496528edbbc45d0")],
    load, "mean_per_class", "30 random images per class (seed 0) / the rest; 102 folders", 102, 64)
