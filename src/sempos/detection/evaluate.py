"""Detection metrics on one set of detections, two ways: the PASCAL VOC devkit's and pycocotools'.

Ground truth and detections use continuous pixel-edge XYXY boxes (Detectron2's XYXY_ABS; a VOC box with 1-based
inclusive corners (xmin, ymin, xmax, ymax) is (xmin - 1, ymin - 1, xmax, ymax)). With that conversion the
devkit's IoU, which adds 1 to inclusive widths, is exactly the continuous IoU used here and by COCO.

The columns (as Detectron2's PascalVOCDetectionEvaluator defines MoCo's VOC numbers):
  AP50        VOC mAP at IoU > 0.5: per class, the devkit's AP (VOC2007 11-point interpolation, or with
              use_07_metric=False the VOC2010+ area under the monotone PR curve), averaged over classes
  AP75        the same at IoU > 0.75
  AP          the mean of the VOC mAP over IoU thresholds 0.50, 0.55, ..., 0.95
  coco_AP, coco_AP50, coco_AP75, coco_APs/m/l   pycocotools' COCOeval (101-point interpolation, at most
              100 detections per image, IoU >= threshold, AP averaged over IoU .50:.05:.95 first, then classes)
Difficult objects (VOC's flag) count neither as positives nor as false positives when matched, in both.
Classes without a non-difficult ground-truth box are left out of the class mean, in both (COCO's -1).

Where the two still differ, by design of each: 11-point vs 101-point interpolation; VOC matches a detection
to its highest-IoU box and calls it a false positive if that box is taken, COCO tries the next best untaken
one; COCO keeps the 100 best detections per image; thresholds are > (VOC) vs >= (COCO). On detections free of
those cases the all-point VOC AP and COCO's agree to within COCO's 101-point sampling (1 AP point, tested).
"""

from __future__ import annotations

import contextlib
import io
from typing import Mapping, Sequence

import numpy as np

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = True) -> float:
    """The devkit's AP from a PR curve: 11-point (VOC2007) or the area under its monotone envelope (VOC2010+)."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = precision[recall >= t].max() if np.any(recall >= t) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [n, 4] with every box in b [m, 4] (continuous XYXY)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, np.finfo(float).eps)


def voc_class_ap(dets: Sequence[tuple], gts: Mapping, iou: float, use_07_metric: bool = True) -> float | None:
    """AP of one class, as the devkit's voc_eval: dets [(image_key, score, box)], gts {image_key: (boxes [k, 4],
    difficult [k])}. None when the class has no non-difficult ground truth."""
    npos = sum(int((~np.asarray(d, bool)).sum()) for _, d in gts.values())
    if npos == 0:
        return None
    order = sorted(range(len(dets)), key=lambda i: -dets[i][1])  # stable: ties keep their input order
    taken = {k: np.zeros(len(b), bool) for k, (b, _) in gts.items()}
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, i in enumerate(order):
        key, _score, box = dets[i]
        boxes, difficult = gts.get(key, (np.zeros((0, 4)), np.zeros(0, bool)))
        if len(boxes):
            ov = iou_matrix(np.asarray(box)[None], boxes)[0]
            j = int(ov.argmax())
            if ov[j] > iou:
                if difficult[j]:
                    continue  # neither TP nor FP
                if not taken[key][j]:
                    tp[rank], taken[key][j] = 1, True
                else:
                    fp[rank] = 1
                continue
        fp[rank] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    return voc_ap(recall, precision, use_07_metric)


def _by_class(gt: Sequence[Mapping], dets: Sequence[Mapping], num_classes: int):
    gts = [{} for _ in range(num_classes)]
    for r in gt:
        boxes = np.asarray(r["boxes"], float).reshape(-1, 4)
        labels = np.asarray(r["labels"], int)
        diff = np.asarray(r.get("difficult") or [0] * len(labels), bool)
        for c in range(num_classes):
            m = labels == c
            gts[c][r["image_id"]] = (boxes[m], diff[m])
    per_class = [[] for _ in range(num_classes)]
    for d in dets:
        per_class[int(d["label"])].append((d["image_id"], float(d["score"]), d["box"]))
    return gts, per_class


def voc_metrics(gt: Sequence[Mapping], dets: Sequence[Mapping], classes: Sequence[str],
                use_07_metric: bool = True) -> dict:
    """AP / AP50 / AP75 (percent) and AP50 per class, by the devkit's rules (see the module docstring).

    gt: one record per image {image_id, boxes [[x0, y0, x1, y1]], labels [0-based], difficult [0/1]};
    dets: [{image_id, label (0-based), score, box [x0, y0, x1, y1]}]."""
    gts, per_class = _by_class(gt, dets, len(classes))
    maps, per_class_ap50 = {}, {}
    for t in IOU_THRESHOLDS:
        aps = {}
        for c, name in enumerate(classes):
            ap = voc_class_ap(per_class[c], gts[c], t, use_07_metric)
            if ap is not None:
                aps[name] = 100.0 * ap
        maps[t] = float(np.mean(list(aps.values()))) if aps else 0.0
        if t == 0.5:
            per_class_ap50 = aps
    return {"AP": float(np.mean(list(maps.values()))), "AP50": maps[0.5], "AP75": maps[0.75],
            "AP50_per_class": per_class_ap50, "metric": "voc07_11point" if use_07_metric else "voc_all_point"}


def coco_ground_truth(gt: Sequence[Mapping], classes: Sequence[str]) -> tuple[dict, dict]:
    """COCO-format ground truth (ids 1-based) and the image_id -> COCO id map; difficult kept per annotation."""
    ids = {r["image_id"]: n + 1 for n, r in enumerate(gt)}
    images, anns = [], []
    for r in gt:
        images.append({"id": ids[r["image_id"]], "width": int(r.get("width", 0)), "height": int(r.get("height", 0))})
        diff = r.get("difficult") or [0] * len(r["labels"])
        for box, label, d in zip(r["boxes"], r["labels"], diff):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": ids[r["image_id"]], "category_id": int(label) + 1,
                         "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0, "difficult": int(d)})
    cats = [{"id": c + 1, "name": n} for c, n in enumerate(classes)]
    return {"images": images, "annotations": anns, "categories": cats}, ids


def _cocoeval_ignoring_difficult():
    from pycocotools.cocoeval import COCOeval

    class VOCDifficultCOCOeval(COCOeval):
        """COCOeval that treats VOC's difficult boxes as ignored regions of plain IoU: COCO's own `ignore` is
        overwritten by `iscrowd` in _prepare, and iscrowd would also switch the IoU to crowd overlap."""

        def _prepare(self):
            super()._prepare()
            for gts in self._gts.values():
                for g in gts:
                    g["ignore"] = int(g["ignore"] or g.get("difficult", 0))

    return VOCDifficultCOCOeval


def coco_metrics(gt_coco: dict, dets_coco: list[dict]) -> dict[str, float]:
    """COCOeval bbox AP, AP50, AP75, APs/m/l in percent; -1 stays -1 (COCO: no ground truth in that range).
    dets_coco: [{image_id, category_id, score, bbox [x, y, w, h]}] with COCO's ids."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its table
        coco_gt = COCO()
        coco_gt.dataset = gt_coco
        coco_gt.createIndex()
        if dets_coco:
            coco_dt = coco_gt.loadRes(dets_coco)
        else:
            # loadRes fails on an empty list; an empty result set is still scored (AP 0).
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt_coco["images"], "categories": gt_coco["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = _cocoeval_ignoring_difficult()(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: (float(v) * 100 if v >= 0 else -1.0) for name, v in zip(COCO_METRICS, ev.stats[:6])}


def evaluate(gt: Sequence[Mapping], dets: Sequence[Mapping], classes: Sequence[str],
             use_07_metric: bool = True) -> dict:
    """Both evaluations of the same detections: VOC's AP/AP50/AP75 and pycocotools' coco_* columns."""
    out = voc_metrics(gt, dets, classes, use_07_metric)
    gt_coco, ids = coco_ground_truth(gt, classes)
    dets_coco = [{"image_id": ids[d["image_id"]], "category_id": int(d["label"]) + 1, "score": float(d["score"]),
                  "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]]}
                 for d in dets]
    out.update({f"coco_{k}": v for k, v in coco_metrics(gt_coco, dets_coco).items()})
    return out
