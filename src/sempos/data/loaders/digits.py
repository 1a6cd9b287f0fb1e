"""scikit-learn's bundled UCI digits: a tiny transfer target that needs no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..spec import Arrays, DatasetSpec


def load(_raw: Path) -> Arrays:
    """1797 8x8 images, split 60/40 by a fixed stratified permutation."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(0)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cut = int(round(0.6 * len(idx)))
        train_idx.append(idx[:cut])
        test_idx.append(idx[cut:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return Arrays(x[tr], y[tr], x[te], y[te], tuple(str(c) for c in range(10)))


SPEC = DatasetSpec(
    name="digits",
    description="scikit-learn's bundled UCI digits: 1797 8x8 images, 10 classes (a tiny transfer target)",
    files=(),
    loader=load,
)
