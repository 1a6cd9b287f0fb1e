"""Linear transfer on frozen features: the SimCLR/BYOL protocol (Kornblith et al. 2019; docs/science.md §4.4).

L2-regularised logistic regression (L-BFGS) on standardised frozen features, without augmentation:
multinomial for single-label datasets; for multi-label VOC2007 one binary classifier per class (images holding
only difficult objects of a class are left out of that class, as its AP leaves them out). The regularisation C
is chosen on the validation split by the dataset's own metric (top-1, mean per-class accuracy or 11-point mAP),
the classifier is refit on train + val with that C, and the test split is scored once, by that metric.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ..progress import bar
from ..errors import DatasetError
from .transfer_metrics import mean_per_class_accuracy, transfer_score

MAX_ITER = 2000


def _fit(x, y, c):
    with warnings.catch_warnings():
        # At large C on separable features L-BFGS stops at max_iter; the fit is still scored on val like any other.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=MAX_ITER).fit(x, y)


class _MultiLabel:
    """One L2 logistic regression per class; scores are decision values [N, C] (ranked per class by the AP).

    A class whose training images are all positive or all negative cannot be fit: it scores every image alike
    (the AP of a constant ranking) and is listed in `constant`, so the result says which classes were not learnt.
    """

    def __init__(self, x, y, c):
        self.models, self.constant = [], []
        for k in range(y.shape[1]):
            keep = y[:, k] != -1
            target = (y[keep, k] == 1).astype(np.int64)
            if len(target) == 0 or target.min() == target.max():
                self.models.append(None)
                self.constant.append(k)
                continue
            self.models.append(_fit(x[keep], target, c))

    def scores(self, x):
        return np.stack([np.zeros(len(x)) if m is None else m.decision_function(x) for m in self.models], axis=1)


def _scores(model, x) -> np.ndarray:
    return model.scores(x) if isinstance(model, _MultiLabel) else model.predict_proba(x)


def _classes_to_columns(model, scores: np.ndarray, num_classes: int) -> np.ndarray:
    """predict_proba columns follow the classes seen in training; place them at their class ids."""
    if isinstance(model, _MultiLabel):
        return scores
    out = np.full((len(scores), num_classes), -np.inf)
    out[:, model.classes_.astype(np.int64)] = scores
    return out


def logistic_transfer(train_x, train_y, val_x, val_y, test_x, test_y, c_grid, metric: str = "top1") -> dict:
    """C chosen on (val_x, val_y) by `metric`, refit on train + val, scored on test.

    Labels: int class ids [N] (metric top1 or mean_per_class), or [N, C] in {1, 0, -1} (metric voc07_map).
    Returns the test `score` (the metric's value, in percent) plus top-1/mean per-class for single-label data.
    """
    multilabel = metric == "voc07_map"
    if multilabel != (np.asarray(train_y).ndim == 2):
        raise DatasetError(f"metric {metric} needs {'[N, C] multi-label' if multilabel else '[N] class'} labels, "
                           f"got labels of shape {np.asarray(train_y).shape}")
    if not len(c_grid):
        raise DatasetError("eval.transfer.c_grid is empty: list at least one C")
    num_classes = int(train_y.shape[1]) if multilabel else int(max(train_y.max(), val_y.max(), test_y.max())) + 1
    make = _MultiLabel if multilabel else _fit

    constant: set[int] = set()

    def fit_score(x_fit, y_fit, x_eval, y_eval, c):
        scaler = StandardScaler().fit(x_fit)
        model = make(scaler.transform(x_fit), y_fit, c)
        constant.update(getattr(model, "constant", ()))
        scores = _classes_to_columns(model, _scores(model, scaler.transform(x_eval)), num_classes)
        return transfer_score(metric, y_eval, scores), scores

    val_scores = {float(c): fit_score(train_x, train_y, val_x, val_y, float(c))[0]
                  for c in bar(c_grid, desc="transfer: C grid", unit="C")}
    # Ties go to the smaller C (the stronger regularisation).
    best_c = max(val_scores, key=lambda c: (val_scores[c], -c))
    score, test_scores = fit_score(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]),
                                   test_x, test_y, best_c)
    out = {"metric": metric, "score": score, "best_c": best_c, "val_score": val_scores[best_c],
           "val_score_by_c": {str(k): v for k, v in val_scores.items()},
           "n_train": int(len(train_y)), "n_val": int(len(val_y)), "n_test": int(len(test_y))}
    if multilabel:
        out["classes_not_learnt"] = sorted(constant)  # all-positive or all-negative in some fit's training set
    else:
        pred = test_scores.argmax(1)
        out.update(top1=float((pred == test_y).mean() * 100), mean_per_class=mean_per_class_accuracy(test_y, pred))
    return out
