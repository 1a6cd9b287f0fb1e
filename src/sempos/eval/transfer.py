"""Transfer by L2-regularised logistic regression on frozen features (the SimCLR/BYOL protocol).

C is chosen on a validation split by top-1, then the model is refit on train+val and scored on test.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ..progress import bar


def _fit(x, y, c):
    return LogisticRegression(C=c, max_iter=2000).fit(x, y)


def mean_per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    classes = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in classes]) * 100)


def logistic_transfer(train_x, train_y, val_x, val_y, test_x, test_y, c_grid) -> dict:
    scaler = StandardScaler().fit(train_x)
    tr, va = scaler.transform(train_x), scaler.transform(val_x)
    val_scores = {float(c): float((_fit(tr, train_y, c).predict(va) == val_y).mean() * 100)
                  for c in bar(c_grid, desc="transfer: C grid", unit="C")}
    best_c = max(val_scores, key=lambda c: (val_scores[c], -c))
    full_x = np.concatenate([train_x, val_x])
    full_y = np.concatenate([train_y, val_y])
    scaler = StandardScaler().fit(full_x)
    model = _fit(scaler.transform(full_x), full_y, best_c)
    pred = model.predict(scaler.transform(test_x))
    return {
        "top1": float((pred == test_y).mean() * 100),
        "mean_per_class": mean_per_class_accuracy(test_y, pred),
        "best_c": best_c,
        "val_top1_by_c": {str(k): v for k, v in val_scores.items()},
    }
