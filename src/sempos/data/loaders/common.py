"""Small helpers shared by the loaders: list files, label arrays, MATLAB files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ..spec import Arrays


def lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def arrays(train_x, train_y, test_x, test_y, classes, val_idx=None) -> Arrays:
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"{split} split: {len(x)} images but {len(y)} labels; the extraction is incomplete")
    if val_idx is not None:
        val_idx = np.asarray(val_idx, dtype=np.int64)
        if len(val_idx) == 0 or len(val_idx) >= len(train_x):
            raise DatasetError(f"official validation split holds {len(val_idx)} of {len(train_x)} train+val "
                               "images; the extraction is incomplete")
    return Arrays(train_x, np.asarray(train_y, dtype=np.int64), test_x, np.asarray(test_y, dtype=np.int64),
                  tuple(str(c) for c in classes), val_idx=val_idx)


def positions(ids: list[str], subset: list[str], what: str) -> np.ndarray:
    """Positions in `ids` of every id in `subset` (an official split list inside another)."""
    where = {i: n for n, i in enumerate(ids)}
    missing = [i for i in subset if i not in where]
    if missing:
        raise DatasetError(f"{what}: {len(missing)} ids (e.g. {missing[0]}) are not in the train+val list; "
                           "the extraction is damaged")
    return np.array([where[i] for i in subset], dtype=np.int64)


def loadmat(path: Path) -> dict:
    try:
        from scipy.io import loadmat as _loadmat
    except ImportError as exc:  # scipy comes with scikit-learn, a dependency; say so if it is missing anyway
        raise DatasetError(f"reading {path.name} needs scipy: pip install scipy") from exc
    return _loadmat(path, squeeze_me=True)
