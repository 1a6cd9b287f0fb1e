"""VOC devkit AP and pycocotools on the same hand-made detections: exact hand-computed VOC values, and the two
evaluators agreeing (VOC all-point vs COCO 101-point: within 1 AP point, COCO's interpolation step)."""

import numpy as np
import pytest

from sempos.detection.evaluate import IOU_THRESHOLDS, evaluate, iou_matrix, voc_ap, voc_class_ap, voc_metrics

CLASSES = ["cat", "dog", "cow"]
# Pixel-edge XYXY boxes. Image 0: a cat and a difficult cat; image 1: a cat and a dog. No cow anywhere.
GT = [{"image_id": 0, "boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 0], "difficult": [0, 1],
       "width": 40, "height": 40},
      {"image_id": 1, "boxes": [[0, 0, 10, 10], [20, 0, 40, 20]], "labels": [0, 1], "difficult": [0, 0],
       "width": 40, "height": 40}]
DETS = [
    {"image_id": 0, "label": 0, "score": 0.9, "box": [0, 0, 10, 10]},     # TP (IoU 1)
    {"image_id": 0, "label": 0, "score": 0.8, "box": [20, 20, 30, 30]},   # on the difficult cat: ignored
    {"image_id": 1, "label": 0, "score": 0.7, "box": [5, 5, 15, 15]},     # IoU 25/175 = 0.14: FP
    {"image_id": 1, "label": 0, "score": 0.6, "box": [0, 0, 10, 8.8]},    # IoU 0.88: TP up to threshold 0.85
    {"image_id": 0, "label": 0, "score": 0.5, "box": [0, 0, 10, 10]},     # duplicate of a found cat: FP
    {"image_id": 1, "label": 1, "score": 0.4, "box": [20, 0, 40, 16.6]},  # dog, IoU 0.83: TP up to 0.80
    {"image_id": 0, "label": 2, "score": 0.9, "box": [0, 0, 5, 5]},       # a cow where there is none
]


def test_iou_and_ap_rules():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 5, 15, 15], [0, 0, 10, 10]]).tolist() == [[25 / 175, 1.0]]
    # VOC devkit convention: inclusive corners (1, 1, 10, 10) -> width 10 = the pixel-edge box (0, 0, 10, 10).
    rec, prec = np.array([0.5, 0.5, 1.0, 1.0]), np.array([1.0, 0.5, 2 / 3, 0.5])
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_voc_metrics_by_hand():
    cats = {0: (np.array(GT[0]["boxes"]), np.array([0, 1], bool)), 1: (np.array(GT[1]["boxes"][:1]), np.zeros(1, bool))}
    cat_dets = [(d["image_id"], d["score"], d["box"]) for d in DETS if d["label"] == 0]
    # Ranked without the ignored one: TP FP TP FP, 2 positives -> recall .5 .5 1 1, precision 1 .5 .67 .5.
    assert voc_class_ap(cat_dets, cats, 0.5) == pytest.approx((6 + 5 * 2 / 3) / 11)
    # Above IoU 0.88 the second cat is missed: TP FP FP FP -> recall stays .5: 6 of 11 points reach precision 1.
    assert voc_class_ap(cat_dets, cats, 0.9) == pytest.approx(6 / 11)
    m = voc_metrics(GT, DETS, CLASSES)
    cat50, cat_hi = (6 + 10 / 3) / 11, 6 / 11
    # Cow has no ground truth: left out of the mean (COCO does the same). Dog: one TP at IoU 0.83.
    assert set(m["AP50_per_class"]) == {"cat", "dog"} and m["AP50_per_class"]["dog"] == pytest.approx(100.0)
    assert m["AP50"] == pytest.approx(100 * (cat50 + 1.0) / 2)
    assert m["AP75"] == pytest.approx(100 * (cat50 + 1.0) / 2)
    # AP: mean over the 10 IoU thresholds; dog found up to 0.80 (7 thresholds), cat's second box up to 0.85 (8).
    per_t = [((cat50 if t < 0.88 else cat_hi) + (1.0 if t < 0.83 else 0.0)) / 2 for t in IOU_THRESHOLDS]
    assert m["AP"] == pytest.approx(100 * np.mean(per_t))


def test_voc_and_coco_agree_on_the_same_detections():
    out = evaluate(GT, DETS, CLASSES, use_07_metric=False)
    for k in ("AP", "AP50", "AP75"):
        assert out[f"coco_{k}"] == pytest.approx(out[k], abs=1.0), k  # 101-point vs exact area: < 1 point
    # The 11-point VOC07 rule sits further from COCO (here 84.85 vs 83.50 for the cat at IoU 0.5).
    voc07 = evaluate(GT, DETS, CLASSES, use_07_metric=True)
    assert voc07["AP50"] > out["AP50"] and abs(voc07["AP50"] - voc07["coco_AP50"]) < 2.0
    assert out["coco_APs"] == pytest.approx(out["coco_AP"])  # every box is small (< 32^2 px)
    # Perfect detections: 100 under every rule; no detections: 0.
    perfect = [{"image_id": r["image_id"], "label": lab, "score": 1.0, "box": b}
               for r in GT for b, lab, d in zip(r["boxes"], r["labels"], r["difficult"]) if not d]
    top = evaluate(GT, perfect, CLASSES)
    assert all(top[k] == pytest.approx(100.0) for k in ("AP", "AP50", "AP75", "coco_AP", "coco_AP50", "coco_AP75"))
    none = evaluate(GT, [], CLASSES)
    assert none["AP50"] == 0.0 and none["coco_AP50"] == 0.0


def test_difficult_boxes_are_ignored_by_both():
    # Dropping the detection on the difficult cat changes nothing in either evaluator.
    kept = [d for d in DETS if d["score"] != 0.8]
    a, b = evaluate(GT, DETS, CLASSES), evaluate(GT, kept, CLASSES)
    for k in ("AP", "AP50", "coco_AP", "coco_AP50"):
        assert a[k] == pytest.approx(b[k]), k
    # Counting the difficult cat as a normal box instead: a miss at every threshold, both get lower.
    plain = [{**r, "difficult": [0] * len(r["labels"])} for r in GT]
    c = evaluate(plain, kept, CLASSES)
    assert c["AP50"] < b["AP50"] and c["coco_AP50"] < b["coco_AP50"]


def _extract(tar_bytes, into):
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        tf.extractall(into, filter="data")


@pytest.mark.skipif("not __import__('sempos.detection.detectron2_backend', fromlist=['x']).available()",
                    reason="detectron2 (with detectron2._C) is not installed")
@pytest.mark.parametrize("use_07", [True, False])
def test_voc_class_ap_equals_detectron2s_voc_eval(tmp_path, use_07):
    """Detectron2's copy of the devkit's voc_eval, fed the XML files and a detection file, and ours, fed the parsed
    records and the same detections (pixel-edge boxes; the file holds them 1-based, as its evaluator writes)."""
    from conftest import fake_voc_tar
    from detectron2.evaluation.pascal_voc_evaluation import voc_eval

    from sempos.data.loaders.voc import CLASSES, parse_annotation

    ids = [f"{i:06d}" for i in range(1, 31)]
    tar, truth = fake_voc_tar("2007", {"test": ids}, seed=7)
    _extract(tar, tmp_path)
    root = tmp_path / "VOCdevkit" / "VOC2007"
    rng = np.random.default_rng(0)
    dets = []
    for i in ids:
        rec = parse_annotation(root / "Annotations" / f"{i}.xml")
        for box, label in zip(rec["boxes"], rec["labels"]):
            for _ in range(int(rng.integers(0, 3))):  # jittered hits, duplicates included
                dets.append({"image_id": i, "label": label, "score": float(rng.random()),
                             "box": [v + float(rng.normal(0, 2)) for v in box]})
        for _ in range(2):  # false positives anywhere, any of the four classes
            x, y = rng.uniform(0, 40), rng.uniform(0, 30)
            dets.append({"image_id": i, "label": int(rng.integers(0, 4)), "score": float(rng.random()),
                         "box": [x, y, x + rng.uniform(5, 20), y + rng.uniform(5, 15)]})
    gts = {c: {i: (np.array([b for b, lab in zip(r["boxes"], r["labels"]) if lab == c]).reshape(-1, 4),
                   np.array([d for d, lab in zip(r["difficult"], r["labels"]) if lab == c], bool))
               for i, r in ((i, parse_annotation(root / "Annotations" / f"{i}.xml")) for i in ids)} for c in range(4)}
    for c in range(4):
        name = CLASSES[c]
        with open(tmp_path / f"det_{name}.txt", "w") as f:
            for d in dets:
                if d["label"] == c:
                    x0, y0, x1, y1 = d["box"]
                    f.write(f"{d['image_id']} {d['score']:.6f} {x0 + 1:.3f} {y0 + 1:.3f} {x1:.3f} {y1:.3f}\n")
        mine_dets = [(d["image_id"], round(d["score"], 6), [round(d["box"][0] + 1, 3) - 1, round(d["box"][1] + 1, 3) - 1,
                                                             round(d["box"][2], 3), round(d["box"][3], 3)])
                     for d in dets if d["label"] == c]
        for iou in (0.5, 0.7):
            _, _, theirs = voc_eval(str(tmp_path / "det_{}.txt"), str(root / "Annotations" / "{}.xml"),
                                    str(root / "ImageSets" / "Main" / "test.txt"), name, iou, use_07)
            assert voc_class_ap(mine_dets, gts[c], iou, use_07) == pytest.approx(theirs, abs=1e-9), (name, iou)
