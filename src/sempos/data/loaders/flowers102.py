"""Oxford Flowers-102 (Nilsback & Zisserman 2008): images, imagelabels.mat and the official setid.mat splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archives import extracted, verified_file
from ..images import load_images
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays, loadmat

_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"


def load(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    """train = trnid + valid (the official validation split is `val_idx`), test = tstid."""
    raw = Path(raw)
    jpg = extracted(raw, "102flowers.tgz") / "jpg"
    labels = np.atleast_1d(loadmat(verified_file(raw, "imagelabels.mat"))["labels"]).astype(np.int64) - 1
    sets = loadmat(verified_file(raw, "setid.mat"))

    def ids(key):
        return np.atleast_1d(sets[key]).astype(np.int64)  # 1-based image ids

    def part(keys):
        chosen = np.concatenate([ids(k) for k in keys])
        return load_images([jpg / f"image_{i:05d}.jpg" for i in chosen], size, resize), labels[chosen - 1]

    (tx, ty), (vx, vy) = part(("trnid", "valid")), part(("tstid",))
    n_train = len(ids("trnid"))
    return arrays(tx, ty, vx, vy, [str(c) for c in range(1, int(labels.max()) + 2)],
                  val_idx=np.arange(n_train, n_train + len(ids("valid"))))


SPEC = transfer_spec(
    "flowers102", "Oxford Flowers-102 (Nilsback & Zisserman 2008): 8,189 images, 102 classes",
    [remote_file("102flowers.tgz", [_URL + "102flowers.tgz"], md5="52808999861908f626f3c1f4e79d11fa"),
     remote_file("imagelabels.mat", [_URL + "imagelabels.mat"], md5="e0620be6f572b9609742df49c70aed4d"),
     remote_file("setid.mat", [_URL + "setid.mat"], md5="a5357ecc9cb78c4bef273ce3793fc85c")],
    load, "mean_per_class", "trnid+valid 2,040 (valid: the validation split) / tstid 6,149", 102, 64)
