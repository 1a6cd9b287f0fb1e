"""Transfer-suite metrics beyond top-1 (docs/science.md §4.4): PASCAL VOC2007 11-point mAP, and one dispatcher.

Which metric a dataset reports is data: `DatasetSpec.extras["metric"]` (sempos.data.catalog), one of
METRICS. All values are percentages, like the rest of the suite's accuracies.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError

METRICS = ("top1", "mean_per_class", "voc07_map")


def mean_per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in y_true of each class's accuracy, in percent."""
    classes = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]) * 100)


def voc07_11point_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class by the VOC2007 devkit's 11-point rule, as a fraction in [0, 1].

    targets: 1 positive, 0 negative, -1 ignored ("difficult": the image holds only difficult objects of the
    class; VOC07 leaves those out of the class's AP). AP = mean over t in {0, 0.1, ..., 1} of the highest
    precision reached at any recall >= t (0 where recall never reaches t).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel()
    if scores.shape != targets.shape:
        raise InvalidValueError(f"scores {scores.shape} and targets {targets.shape} differ in shape")
    keep = targets != -1
    scores, positive = scores[keep], targets[keep] == 1
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise InvalidValueError("AP is undefined for a class without positive (non-difficult) images")
    # Stable descending sort: tied scores keep their input order, as the devkit's sort does in practice.
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    recall = tp / n_pos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = 0.0
    for t in np.linspace(0.0, 1.0, 11):
        reached = precision[recall >= t]
        ap += (reached.max() if reached.size else 0.0) / 11.0
    return float(ap)


def voc07_11point_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes of the VOC2007 11-point AP, in percent.

    scores: [N, C] real-valued class scores (any monotone scale: logits, SVM margins, probabilities).
    targets: [N, C] in {1 positive, 0 negative, -1 ignored/difficult} (the encoding the VOC07
    loader returns). Classes without a positive image are skipped; if none has one, it is an error.
    """
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise InvalidValueError(f"scores and targets must both be [N, C]; got {scores.shape} and {targets.shape}")
    bad = set(np.unique(targets).tolist()) - {-1, 0, 1}
    if bad:
        raise InvalidValueError(f"targets must hold 1 (positive), 0 (negative) or -1 (difficult); found {sorted(bad)}")
    aps = [voc07_11point_ap(scores[:, c], targets[:, c]) for c in range(scores.shape[1])
           if (targets[:, c] == 1).any()]
    if not aps:
        raise InvalidValueError("no class has a positive image: mAP is undefined")
    return 100.0 * float(np.mean(aps))


def transfer_score(metric: str, targets: np.ndarray, scores: np.ndarray) -> float:
    """The dataset's reported number from class scores [N, C]: top-1 or mean per-class accuracy of the
    argmax (targets [N] class ids), or VOC07 11-point mAP (targets [N, C] as voc07_11point_map)."""
    scores = np.asarray(scores)
    if metric == "voc07_map":
        return voc07_11point_map(scores, targets)
    targets = np.asarray(targets)
    pred = scores.argmax(1)
    if metric == "top1":
        return float((pred == targets).mean() * 100)
    if metric == "mean_per_class":
        return mean_per_class_accuracy(targets, pred)
    raise InvalidValueError(f"unknown transfer metric '{metric}'; choose one of {METRICS}")
