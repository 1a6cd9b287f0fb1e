"""PASCAL VOC (Everingham et al. 2010): VOC2007 classification (transfer suite) and VOC07+12 detection.

Two catalog entries share the devkit layout (VOCdevkit/VOC20xx/{Annotations, ImageSets/Main, JPEGImages}):

  voc2007   classification, [N, 20] labels in {1 positive, 0 negative, -1 difficult-only (ignored by the
            metric)}, read from the devkit's per-class ImageSets lists; trainval / test, val is `val_idx`.
  voc0712   detection (docs/science.md §4.5, MoCo's protocol): the 2007 trainval and test archives plus the
            2012 trainval archive; its loader parses every XML annotation into box records (below), kept
            per split as Detectron2 names them (voc_2007_trainval, voc_2012_trainval, voc_2007_test).

Box records keep Detectron2's convention: VOC's 1-based inclusive pixel indices become continuous pixel-edge
coordinates (xmin - 1, ymin - 1, xmax, ymax), so width = xmax - xmin + 1 as in the devkit's area, and the
`difficult` flag is kept per object (training uses every object, as Detectron2 does; evaluation ignores the
difficult ones, as the devkit does).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ..archives import extracted
from ..images import load_images
from ..spec import Arrays, DatasetSpec, remote_file, transfer_spec
from .common import arrays, lines, positions

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
           "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
_FLAG = {"1": 1, "-1": 0, "0": -1}  # devkit: 1 present, -1 absent, 0 only difficult objects -> ignored
_MIRRORS_2007 = ("https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/", "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/")
_MIRRORS_2012 = ("https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/")
TRAINVAL_2007 = remote_file("VOCtrainval_06-Nov-2007.tar", [u + "VOCtrainval_06-Nov-2007.tar" for u in _MIRRORS_2007],
                            md5="c52e279531787c972589f7e41ab4ae64")
TEST_2007 = remote_file("VOCtest_06-Nov-2007.tar", [u + "VOCtest_06-Nov-2007.tar" for u in _MIRRORS_2007],
                        md5="b6e924de25625d8de591ea690078ad9f")
TRAINVAL_2012 = remote_file("VOCtrainval_11-May-2012.tar", [u + "VOCtrainval_11-May-2012.tar" for u in _MIRRORS_2012],
                            md5="6cd6e144f989b92b3379bac3b3de84fd")
# Detectron2's split names -> (archive, devkit year folder, ImageSets/Main list).
DETECTION_SPLITS = {
    "voc_2007_trainval": (TRAINVAL_2007.name, "VOC2007", "trainval"),
    "voc_2007_test": (TEST_2007.name, "VOC2007", "test"),
    "voc_2012_trainval": (TRAINVAL_2012.name, "VOC2012", "trainval"),
}
# Segmentation masks are not needed for boxes; skipping them keeps the 2012 extraction ~15 % smaller.
_SKIP = ("*/SegmentationClass/*", "*/SegmentationObject/*")


def load_classification(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    raw = Path(raw)

    def part(archive, split):
        root = extracted(raw, archive) / "VOCdevkit" / "VOC2007"
        main = root / "ImageSets" / "Main"
        ids = lines(main / f"{split}.txt")
        pos = {i: n for n, i in enumerate(ids)}
        y = np.full((len(ids), len(CLASSES)), -2, dtype=np.int64)
        for c, name in enumerate(CLASSES):
            for ln in lines(main / f"{name}_{split}.txt"):
                img, flag = ln.split()
                y[pos[img], c] = _FLAG[flag]
        if (y == -2).any():
            raise DatasetError(f"VOC2007 {split}: per-class lists do not cover every image; the extraction is damaged")
        return load_images([root / "JPEGImages" / f"{i}.jpg" for i in ids], size, resize), y, ids, main

    tx, ty, train_ids, main = part(TRAINVAL_2007.name, "trainval")
    vx, vy, _, _ = part(TEST_2007.name, "test")
    val = positions(train_ids, lines(main / "val.txt"), "VOC2007 ImageSets/Main/val.txt")
    return arrays(tx, ty, vx, vy, CLASSES, val_idx=val)


def parse_annotation(path: Path, classes=CLASSES) -> dict:
    """One VOC XML file -> {width, height, boxes [k, 4] pixel-edge XYXY, labels [k] 0-based, difficult [k]}."""
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width, height = int(size.find("width").text), int(size.find("height").text)
        boxes, labels, difficult = [], [], []
        for obj in root.findall("object"):
            name = obj.find("name").text.strip()
            if name not in classes:
                raise DatasetError(f"{path}: object class '{name}' is not a VOC class")
            bb = obj.find("bndbox")
            x0, y0, x1, y1 = (float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            flag = obj.find("difficult")
            boxes.append([x0 - 1.0, y0 - 1.0, x1, y1])
            labels.append(classes.index(name))
            difficult.append(int(flag.text) if flag is not None and flag.text else 0)
    except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable VOC annotation ({type(exc).__name__}: {exc}); the extraction "
                           "may be damaged: delete data/raw/.extracted/voc0712/ and rerun prepare") from exc
    for b in boxes:
        if not (0 <= b[0] < b[2] <= width and 0 <= b[1] < b[3] <= height):
            raise DatasetError(f"{path}: box {b} (pixel-edge XYXY) lies outside the {width}x{height} image")
    return {"width": width, "height": height, "boxes": boxes, "labels": labels, "difficult": difficult}


def split_records(raw: Path, split: str) -> list[dict]:
    """Box records of one Detectron2-named split, each with its JPEG's path."""
    archive, year, listing = DETECTION_SPLITS[split]
    root = extracted(Path(raw), archive, skip=_SKIP) / "VOCdevkit" / year
    records = []
    for image_id in lines(root / "ImageSets" / "Main" / f"{listing}.txt"):
        rec = parse_annotation(root / "Annotations" / f"{image_id}.xml")
        records.append({"image_id": f"{year[3:]}_{image_id}", "file": str(root / "JPEGImages" / f"{image_id}.jpg"),
                        **rec})
    if not records:
        raise DatasetError(f"{split}: {root}/ImageSets/Main/{listing}.txt lists no image; the extraction is damaged")
    return records


def load_detection(raw: Path) -> dict:
    """The detection index: every split's box records and its devkit folder (for Detectron2's VOC evaluator)."""
    raw = Path(raw)
    sets, dirs = {}, {}
    for split, (archive, year, _) in DETECTION_SPLITS.items():
        sets[split] = split_records(raw, split)
        dirs[split] = str(extracted(raw, archive, skip=_SKIP) / "VOCdevkit" / year)
    return {"kind": "detection", "name": "voc0712", "classes": list(CLASSES), "sets": sets, "dirs": dirs}


CLASSIFICATION = transfer_spec(
    "voc2007", "PASCAL VOC2007 classification (Everingham et al. 2010): 5,011/4,952 images, 20 labels",
    [TRAINVAL_2007, TEST_2007], load_classification, "voc07_map",
    "trainval 5,011 (val: the validation split) / test 4,952; labels [N, 20] in {1, 0, -1 difficult}", 20, 64,
    multilabel=True)
DETECTION = DatasetSpec(
    name="voc0712",
    description="PASCAL VOC detection (MoCo's protocol): train VOC2007+2012 trainval (16,551 images), "
                "test VOC2007 test (4,952 images), 20 classes, boxes with difficult flags",
    files=(TRAINVAL_2007, TEST_2007, TRAINVAL_2012),
    loader=load_detection,
    # A verified VOC2007 download of the classification target is copied, not fetched again.
    local_dirs=(Path("data/raw/voc2007"),),
    local_hint="place VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar and VOCtrainval_11-May-2012.tar (the "
               "official files, checked by md5) in data/raw/voc0712/",
    extras={"kind": "detection", "num_classes": 20, "checksum": "md5 as published by the VOC devkit pages",
            "splits": tuple(DETECTION_SPLITS)},
)
