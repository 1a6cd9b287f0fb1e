"""Fixed, class-balanced index subsets shared by the in-memory and the encoded (JPEG) prepare paths."""

from __future__ import annotations

import numpy as np

from ..errors import DatasetError

SPLIT_SEED = 0


def balanced_subset(labels: np.ndarray, pool: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-balanced subset of `pool` holding `fraction` of it (at least one image per class)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels[pool])
    per_class = max(1, int(round(fraction * len(pool) / len(classes))))
    picked = []
    for c in classes:
        members = pool[labels[pool] == c]
        if len(members) < per_class:
            raise DatasetError(
                f"class {c} has {len(members)} images, fewer than the {per_class} a balanced "
                f"{fraction:.2%} subset needs; lower the fraction"
            )
        picked.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(picked))
