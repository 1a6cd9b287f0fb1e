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


def test_more_pretraining_images_than_exist_is_an_error_naming_the_key():
    with pytest.raises(DatasetError, match=r"data.train_subset=950 is more than the 900 train-split images"):
        split_indices(labels(1000), val_size=100, train_subset=950, fractions=[])
    assert len(split_indices(labels(1000), val_size=100, train_subset=900, fractions=[])["pretrain"]) == 900


def fmnist_raw(tmp_path, n_train=40, n_test=20):
    """A tiny Fashion-MNIST raw directory (real IDX .gz files) with the manifest download writes."""
    import gzip
    import hashlib
    import json

    raw = tmp_path / "raw" / "fmnist"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def idx(arr, magic):
        head = bytes([0, 0, magic, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return gzip.compress(head + arr.astype(np.uint8).tobytes())

    files = {"train-images-idx3-ubyte.gz": idx(rng.integers(0, 255, (n_train, 28, 28)), 8),
             "train-labels-idx1-ubyte.gz": idx(np.arange(n_train) % 10, 8),
             "t10k-images-idx3-ubyte.gz": idx(rng.integers(0, 255, (n_test, 28, 28)), 8),
             "t10k-labels-idx1-ubyte.gz": idx(np.arange(n_test) % 10, 8)}
    for name, body in files.items():
        (raw / name).write_bytes(body)
    (raw / "MANIFEST.json").write_text(json.dumps({"sha256": {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}}))
    return raw


CFG = {"pretrain": "fmnist", "val_size": 10, "train_subset": 0, "semi_fractions": []}


def test_a_truncated_raw_file_is_named_with_the_fix(tmp_path, monkeypatch):
    from sempos.data.prepare import prepare

    monkeypatch.chdir(tmp_path)
    raw = fmnist_raw(tmp_path)
    prepare("fmnist", raw.parent, tmp_path / "ok.pt", CFG)
    gz = raw / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-40])
    with pytest.raises(DatasetError) as err:
        prepare("fmnist", raw.parent, tmp_path / "bad.pt", CFG)
    assert str(err.value).startswith(f"{gz} does not match the sha256 recorded when it was downloaded")
    assert "rerun the download stage" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "bad.pt").exists()


def test_an_undecodable_raw_file_is_one_error_not_a_traceback(tmp_path, monkeypatch):
    import hashlib
    import json

    from sempos.data.prepare import prepare

    monkeypatch.chdir(tmp_path)
    raw = fmnist_raw(tmp_path)
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-12])  # a cut gzip stream, but one the manifest agrees with
    manifest = json.loads((raw / "MANIFEST.json").read_text())
    manifest["sha256"][gz.name] = hashlib.sha256(gz.read_bytes()).hexdigest()
    (raw / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"raw files in .*fmnist cannot be read \((EOFError|BadGzipFile)"):
        prepare("fmnist", raw.parent, tmp_path / "bad.pt", CFG)


def test_requests_larger_than_the_data_are_errors(tmp_path, monkeypatch):
    from sempos.data.prepare import prepare

    monkeypatch.chdir(tmp_path)
    raw = fmnist_raw(tmp_path)
    with pytest.raises(DatasetError, match=r"data.max_train=50 is more than the 40 images"):
        prepare("fmnist", raw.parent, tmp_path / "p.pt", {**CFG, "max_train": 50})
    with pytest.raises(DatasetError, match=r"data.train_subset=31 is more than the 30 train-split images"):
        prepare("fmnist", raw.parent, tmp_path / "p.pt", {**CFG, "train_subset": 31})


def test_a_prepared_file_with_flipped_bytes_is_refused(tmp_path, monkeypatch):
    import torch

    from sempos.data.prepare import load_prepared, prepare

    monkeypatch.chdir(tmp_path)
    out = prepare("fmnist", fmnist_raw(tmp_path).parent, tmp_path / "p.pt", CFG)
    assert load_prepared(out)["train_x"].shape == (40, 1, 28, 28)
    data = torch.load(out, weights_only=False)
    data["train_x"][3, 0, 5:13, 0] ^= 0xFF  # 8 pixels flipped inside the tensor: the pickle still loads
    torch.save(data, out)
    with pytest.raises(DatasetError, match=r"p.pt fails its content_sha256 check \(corrupt or edited\)"):
        load_prepared(out)
