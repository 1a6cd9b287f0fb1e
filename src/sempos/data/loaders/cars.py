"""Stanford Cars (Krause et al. 2013): devkit, train/test archives and the labelled test annotations.

md5s pinned by torchvision 0.13-0.15 (stanford_cars.py). The ai.stanford.edu URLs are dead since 2023
(torchvision 0.16+ refuses to download); a verified local copy in data/raw/cars/ is the way in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archives import extracted, verified_file
from ..images import load_images
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays, loadmat

_URL = "https://ai.stanford.edu/~jkrause/"


def load(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    raw = Path(raw)
    devkit = extracted(raw, "car_devkit.tgz") / "devkit"
    classes = np.atleast_1d(loadmat(devkit / "cars_meta.mat")["class_names"]).tolist()

    def part(images: Path, annos: Path):
        rows = np.atleast_1d(loadmat(annos)["annotations"])
        x = load_images([images / str(r["fname"]) for r in rows], size, resize)
        return x, [int(r["class"]) - 1 for r in rows]  # classes are 1-based in the devkit

    tx, ty = part(extracted(raw, "cars_train.tgz") / "cars_train", devkit / "cars_train_annos.mat")
    vx, vy = part(extracted(raw, "cars_test.tgz") / "cars_test", verified_file(raw, "cars_test_annos_withlabels.mat"))
    return arrays(tx, ty, vx, vy, classes)


SPEC = transfer_spec(
    "cars", "Stanford Cars (Krause et al. 2013): 8,144/8,041 images, 196 classes",
    [remote_file("car_devkit.tgz", [_URL + "cars/car_devkit.tgz",
                                    "https://github.com/pytorch/vision/files/11644847/car_devkit.tgz"],
                 md5="c3b158d763b6e2245038c8ad08e45376"),
     remote_file("cars_train.tgz", [_URL + "car196/cars_train.tgz"], md5="065e5b463ae28d29e77c1b4b166cfe61"),
     remote_file("cars_test.tgz", [_URL + "car196/cars_test.tgz"], md5="4ce7ebf6a94d07f1952d94dd34c4d501"),
     remote_file("cars_test_annos_withlabels.mat", [_URL + "car196/cars_test_annos_withlabels.mat"],
                 md5="b0a2b23655a3edd16d84508592a98d10")],
    load, "top1", "cars_train 8,144 / cars_test 8,041", 196, 64,
    local_hint="the official URLs are offline; copy car_devkit.tgz, cars_train.tgz, cars_test.tgz and "
               "cars_test_annos_withlabels.mat (the original files: checked against torchvision's md5s) "
               "into data/raw/cars/",
    checksum="md5 pinned by torchvision 0.13-0.15 (official URLs offline)")
