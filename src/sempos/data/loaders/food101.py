"""Food-101 (Bossard et al. 2014): the ETH archive with meta/train.json and meta/test.json."""

from __future__ import annotations

import json
from pathlib import Path

from ..archives import extracted
from ..images import load_images
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays


def load(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    root = extracted(Path(raw), "food-101.tar.gz") / "food-101"
    meta = {s: json.loads((root / "meta" / f"{s}.json").read_text()) for s in ("train", "test")}
    classes = sorted(meta["train"])  # torchvision's class order

    def part(split):
        items = [(rel, c) for c, rels in sorted(meta[split].items()) for rel in rels]
        x = load_images([root / "images" / f"{rel}.jpg" for rel, _ in items], size, resize)
        return x, [classes.index(c) for _, c in items]

    (tx, ty), (vx, vy) = part("train"), part("test")
    return arrays(tx, ty, vx, vy, classes)


SPEC = transfer_spec(
    "food101", "Food-101 (Bossard et al. 2014): 75,750/25,250 images, 101 classes",
    [remote_file("food-101.tar.gz", ["http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"],
                 md5="85eeb15f3717b99a5da872d97d918f87")],
    load, "top1", "meta/train.json 75,750 / meta/test.json 25,250", 101, 64)
