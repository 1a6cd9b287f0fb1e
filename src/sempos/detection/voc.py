"""PASCAL VOC detection images and boxes for the torchvision detector (docs/science.md §4.5).

The prepare stage parses VOC's XML once (sempos.data.loaders.voc) into box records per split; `VOCBoxes` is
the union of the chosen splits (MoCo: voc_2007_trainval + voc_2012_trainval for training, voc_2007_test for
testing) and decodes each JPEG when it is asked for, so it can feed a multi-worker DataLoader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .errors import DetectionError

TRAIN_SETS = ("voc_2007_trainval", "voc_2012_trainval")
TEST_SETS = ("voc_2007_test",)
VOC_DEFAULTS: dict = {
    "train_sets": list(TRAIN_SETS),
    "test_sets": list(TEST_SETS),
    "max_images": 0,          # first images of each set kept (0 = all): quick checks only
    "use_07_metric": True,    # VOC2007 test: the devkit's 11-point AP (Detectron2 picks it by year as well)
}


def voc_settings(cfg: Mapping | None = None) -> dict:
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(VOC_DEFAULTS))
    if unknown:
        raise DetectionError(f"unknown detection.voc setting(s) {unknown}; known: {sorted(VOC_DEFAULTS)}")
    return {**VOC_DEFAULTS, **cfg}


class VOCBoxes:
    """Box records of one or more VOC splits; `load` decodes image i (optionally flipped) for the detector."""

    def __init__(self, records: Sequence[Mapping], classes: Sequence[str], names: Sequence[str]) -> None:
        self.records, self.classes, self.names = list(records), list(classes), list(names)

    @classmethod
    def from_index(cls, index: Mapping, names: Sequence[str], max_images: int = 0) -> "VOCBoxes":
        missing = [n for n in names if n not in index["sets"]]
        if missing:
            raise DetectionError(f"VOC split(s) {missing} are not in the prepared index (it has {sorted(index['sets'])}); "
                                 "fix detection.voc.train_sets / test_sets")
        records = []
        for n in names:
            recs = index["sets"][n]
            records += recs[:max_images] if max_images else recs
        return cls(records, index["classes"], names)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, i: int, flip: bool, in_channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(float image [C, H, W] in [0, 1], boxes [k, 4] pixel-edge XYXY, labels [k] 0-based)."""
        from PIL import Image, UnidentifiedImageError

        r = self.records[i]
        try:
            with Image.open(r["file"]) as im:
                arr = np.asarray(im.convert("L" if in_channels == 1 else "RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DetectionError(f"cannot read {r['file']} ({exc}); rerun the prepare stage for voc0712 (it "
                                 "re-extracts a damaged extraction)") from exc
        x = torch.from_numpy(arr.copy()).float().div_(255.0)
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
        boxes = torch.tensor(r["boxes"], dtype=torch.float32).reshape(-1, 4)
        if flip:
            w = x.shape[-1]
            x = x.flip(-1)
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
        return x, boxes, torch.tensor(r["labels"], dtype=torch.int64)

    def ground_truth(self) -> list[dict]:
        """Records for sempos.detection.evaluate (image ids are positions, as `predict` numbers them)."""
        return [{"image_id": i, "boxes": r["boxes"], "labels": r["labels"], "difficult": r["difficult"],
                 "width": r["width"], "height": r["height"]} for i, r in enumerate(self.records)]


def check_files(boxes: VOCBoxes) -> None:
    """Fail before training when the extraction the index points at is gone (e.g. data/raw/.extracted deleted)."""
    missing = [r["file"] for r in boxes.records[:1] + boxes.records[-1:] if not Path(r["file"]).is_file()]
    if missing:
        raise DetectionError(f"{missing[0]} is missing: the VOC extraction was removed; rerun the prepare stage "
                             "for voc0712 (python -m sempos.stages.prepare --ds voc0712)")
