import numpy as np
import pytest

from sempos.data.prepare import balanced_subset, split_indices
from sempos.errors import DatasetError


def labels(n=1000, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def test_splits_are_disjoint_deterministic_and_balanced():
    y = labels()
    a = split_indices(y, val_size=100, train_subset=300, fractions=[1, 10])
    b = split_indices(y, val_size=100, train_subset=300, fractions=[1, 10])
    for k in ("train", "val", "pretrain"):
        assert np.array_equal(a[k], b[k])
    assert not set(a["train"]) & set(a["val"])
    assert set(a["pretrain"]) <= set(a["train"]) and len(a["pretrain"]) == 300
    for frac, idx in a["semi"].items():
        assert set(idx) <= set(a["train"])
        counts = np.bincount(y[idx], minlength=10)
        assert counts.min() == counts.max(), f"{frac}% subset is not class-balanced: {counts}"
        assert np.array_equal(idx, b["semi"][frac])
    assert len(a["semi"]["10"]) == pytest.approx(0.1 * len(a["train"]), abs=10)


def test_balanced_subset_needs_enough_images():
    y = np.array([0] * 50 + [1] * 2)
    with pytest.raises(DatasetError, match="lower the fraction"):
        balanced_subset(y, np.arange(len(y)), 0.5, 0)


def test_val_size_too_large_is_reported():
    with pytest.raises(DatasetError, match="val_size"):
        split_indices(labels(10), val_size=10, train_subset=0, fractions=[])


def test_idx_reader_rejects_truncated(tmp_path):
    from sempos.data.idx import read_idx

    good = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes(range(5))
    (tmp_path / "ok").write_bytes(good)
    assert read_idx(tmp_path / "ok").tolist() == [0, 1, 2, 3, 4]
    (tmp_path / "bad").write_bytes(good[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "bad")
