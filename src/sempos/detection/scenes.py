"""A small detection proxy: scenes composed of Fashion-MNIST items pasted onto a blank canvas.

VOC needs data and compute a 2-core machine does not have, so the suite's default detection number
comes from these scenes: 1-3 items per canvas, each rescaled by a random factor, placed without (or
with limited) box overlap, labelled with its class and the tight box of its non-zero pixels.

Box conventions (one box, three spellings):
  * `boxes` (torchvision, Detectron2 XYXY_ABS): continuous pixel-edge coordinates (x0, y0, x1 + 1, y1 + 1),
    where x0..x1 / y0..y1 are the first/last foreground columns/rows; so width = number of columns.
  * COCO `bbox`: [x0, y0, width, height] in the same continuous coordinates; `area` = width * height
    (what Detectron2's convert_to_coco_dict writes for box-only datasets).
  * VOC objects: 1-based inclusive pixel indices (xmin = x0 + 1, xmax = x1 + 1), as in the VOC XML files.
Category ids are 1-based in COCO (id = class index + 1), which is also the label torchvision's Faster
R-CNN expects (0 is background); VOC objects carry the class name.

Everything is a pure function of (items, settings, seed): the same call gives the same scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DetectionError

# Settings of `make_scenes` with their defaults; `scene_settings` validates user values against these.
SCENE_DEFAULTS: dict = {
    "canvas": 64,          # square canvas side in pixels (a multiple of 32 avoids padding in the detector)
    "min_items": 1,
    "max_items": 3,
    "scale": [0.8, 1.6],   # uniform range of the item's resize factor (28 px -> 22..45 px)
    "max_iou": 0.0,        # largest IoU allowed between two boxes of a scene; 0 = boxes never share a pixel
    "max_tries": 50,       # positions tried per item before the scene keeps the items placed so far
    "fg_threshold": 0,     # pixels above this uint8 value are the item (0 = every non-zero pixel)
}


@dataclass
class SceneSet:
    images: torch.Tensor          # uint8 [S, C, H, W]
    boxes: list[torch.Tensor]     # per scene float32 [k, 4], XYXY pixel-edge coordinates
    labels: list[torch.Tensor]    # per scene int64 [k], 0-based class index
    sources: list[torch.Tensor]   # per scene int64 [k], index of each item in the source images given
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: Sequence[int]) -> "SceneSet":
        idx = list(idx)
        return SceneSet(self.images[idx], [self.boxes[i] for i in idx], [self.labels[i] for i in idx],
                        [self.sources[i] for i in idx], self.classes)

    def coco(self) -> dict:
        """COCO-format ground truth (image ids are 1-based scene positions)."""
        h, w = self.images.shape[-2:]
        images, anns = [], []
        for i in range(len(self)):
            images.append({"id": i + 1, "width": int(w), "height": int(h), "file_name": f"scene_{i:06d}.png"})
            for box, label in zip(self.boxes[i].tolist(), self.labels[i].tolist()):
                bw, bh = box[2] - box[0], box[3] - box[1]
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                             "bbox": [box[0], box[1], bw, bh], "area": bw * bh, "iscrowd": 0})
        cats = [{"id": c + 1, "name": name, "supercategory": "item"} for c, name in enumerate(self.classes)]
        return {"info": {"description": "sempos Fashion-MNIST detection proxy scenes"},
                "images": images, "annotations": anns, "categories": cats}

    def voc(self) -> list[dict]:
        """VOC-style records, one per scene: 1-based inclusive corner pixels and the class name."""
        h, w = self.images.shape[-2:]
        out = []
        for i in range(len(self)):
            objects = [{"name": self.classes[int(c)], "difficult": 0, "truncated": 0,
                        "bbox": {"xmin": int(b[0]) + 1, "ymin": int(b[1]) + 1, "xmax": int(b[2]), "ymax": int(b[3])}}
                       for b, c in zip(self.boxes[i].tolist(), self.labels[i].tolist())]
            out.append({"image_id": i + 1, "filename": f"scene_{i:06d}.png", "width": int(w), "height": int(h),
                        "depth": int(self.images.shape[1]), "objects": objects})
        return out


def scene_settings(cfg: Mapping | None = None) -> dict:
    """Defaults overlaid with `cfg`; unknown keys and impossible ranges raise DetectionError."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(SCENE_DEFAULTS))
    if unknown:
        raise DetectionError(f"unknown detection scene setting(s) {unknown}; known: {sorted(SCENE_DEFAULTS)}")
    s = {**SCENE_DEFAULTS, **cfg}
    lo, hi = (float(v) for v in s["scale"])
    if not 0 < lo <= hi:
        raise DetectionError(f"detection scene scale {s['scale']} must be 0 < low <= high")
    if not 1 <= int(s["min_items"]) <= int(s["max_items"]):
        raise DetectionError(f"detection scenes need 1 <= min_items <= max_items, got "
                             f"{s['min_items']}..{s['max_items']}")
    if not 0.0 <= float(s["max_iou"]) < 1.0:
        raise DetectionError(f"detection scene max_iou {s['max_iou']} must be in [0, 1)")
    return s


def _resize(item: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 [C, h, w] -> uint8 [C, side, side]; antialiased so shrunk items keep their thin strokes."""
    x = F.interpolate(item[None].float(), size=(side, side), mode="bilinear", align_corners=False,
                      antialias=True)[0]
    return x.round_().clamp_(0, 255).to(torch.uint8)


def tight_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1 + 1, y1 + 1) of the True pixels of a [h, w] mask, or None when it is empty."""
    ys = torch.nonzero(mask.any(1)).flatten()
    xs = torch.nonzero(mask.any(0)).flatten()
    if len(ys) == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def make_scenes(images_u8: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], n_scenes: int,
                seed: int, cfg: Mapping | None = None) -> SceneSet:
    """`n_scenes` canvases with items drawn (with replacement) from `images_u8` [N, C, h, w] / `labels` [N]."""
    s = scene_settings(cfg)
    if len(images_u8) == 0:
        raise DetectionError("no source images to compose detection scenes from")
    canvas, c = int(s["canvas"]), int(images_u8.shape[1])
    lo, hi = (float(v) for v in s["scale"])
    biggest = int(round(max(images_u8.shape[-2:]) * hi))
    if biggest > canvas:
        raise DetectionError(f"items scaled by up to {hi} reach {biggest} px, larger than the {canvas} px canvas; "
                             f"raise detection.scenes.canvas or lower the scale range")
    labels = torch.as_tensor(labels).long()
    rng = np.random.default_rng(seed)
    out = torch.zeros(n_scenes, c, canvas, canvas, dtype=torch.uint8)
    all_boxes, all_labels, all_src = [], [], []
    for i in range(n_scenes):
        want = int(rng.integers(s["min_items"], s["max_items"] + 1))
        boxes, labs, srcs = [], [], []
        for _ in range(want):
            placed = _place_item(out[i], images_u8, rng, s, boxes, lo, hi)
            if placed is None:
                break  # the canvas is full at this overlap limit: keep the items placed so far
            box, src = placed
            boxes.append(box)
            labs.append(int(labels[src]))
            srcs.append(src)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labs, dtype=torch.int64))
        all_src.append(torch.tensor(srcs, dtype=torch.int64))
    return SceneSet(out, all_boxes, all_labels, all_src, list(classes))


def _place_item(canvas: torch.Tensor, images_u8: torch.Tensor, rng: np.random.Generator, s: dict,
                boxes: list, lo: float, hi: float):
    """Paste one random item into `canvas` in place; its (box, source index), or None if it does not fit."""
    size = canvas.shape[-1]
    for _ in range(int(s["max_tries"])):
        src = int(rng.integers(len(images_u8)))
        patch = _resize(images_u8[src], int(round(images_u8.shape[-1] * rng.uniform(lo, hi))))
        fg = (patch > int(s["fg_threshold"])).any(0)
        local = tight_box(fg)
        if local is not None:
            break  # a blank item (nothing above fg_threshold) has no box to learn from: draw another
    else:
        raise DetectionError(f"{s['max_tries']} items in a row have no pixel above fg_threshold="
                             f"{s['fg_threshold']}; lower detection.scenes.fg_threshold")
    crop = torch.where(fg, patch, torch.zeros_like(patch))[:, local[1]:local[3], local[0]:local[2]]
    bw, bh = local[2] - local[0], local[3] - local[1]
    # Only positions are retried (cheap); the item and its scale stay, so crowded canvases do not bias the
    # scale distribution towards small items.
    for _ in range(int(s["max_tries"])):
        # The tight box (not the padded patch) must lie inside the canvas, so items may touch the border.
        x0, y0 = int(rng.integers(0, size - bw + 1)), int(rng.integers(0, size - bh + 1))
        box = (x0, y0, x0 + bw, y0 + bh)
        if any(_iou(box, b) > float(s["max_iou"]) for b in boxes):  # IoU > 0 iff the boxes share pixels
            continue
        region = canvas[:, y0:y0 + bh, x0:x0 + bw]
        # max-composition: where limited overlap is allowed, neither item erases the other's pixels.
        torch.maximum(region, crop, out=region)
        return box, src
    return None


def proxy_scene_sets(data: Mapping, n_train: int, n_test: int, seed: int,
                     cfg: Mapping | None = None) -> tuple[SceneSet, SceneSet]:
    """(train, test) scenes from a prepared payload: train items from the train split (val excluded when the
    payload has splits), test items from the test images, so no item is shared between the two sets."""
    from ..data.shards import is_encoded

    if is_encoded(data["train_x"]):
        from .errors import DetectionError

        raise DetectionError("proxy scenes are composed from in-memory items; for JPEG pretraining sets use "
                             "eval.detection.backend: detectron2 with VOC (MoCo's protocol)")
    train_idx = (data.get("splits") or {}).get("train")
    train_x, train_y = data["train_x"], data["train_y"]
    if train_idx is not None:
        train_idx = torch.as_tensor(train_idx).long()
        train_x, train_y = train_x[train_idx], train_y[train_idx]
    classes = list(data["classes"])
    # Separate streams, so changing n_train leaves the test scenes as they were.
    train = make_scenes(train_x, train_y, classes, n_train, seed * 2 + 1, cfg)
    test = make_scenes(data["test_x"], data["test_y"], classes, n_test, seed * 2 + 2, cfg)
    return train, test
