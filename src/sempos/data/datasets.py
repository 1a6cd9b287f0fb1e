"""The built-in datasets. Transfer and detection datasets register themselves in their own modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .idx import read_idx
from .registry import Arrays, DatasetSpec, RemoteFile, register

_FMNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
# Official .gz md5s (as torchvision pins them) and the sha256 of the decompressed IDX bytes,
# which is what the Debian package's re-compressed files share with the official ones.
_FMNIST_FILES = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
FMNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def _load_fmnist(raw: Path) -> Arrays:
    def images(name: str) -> np.ndarray:
        return read_idx(raw / name)[:, None, :, :].copy()

    def labels(name: str) -> np.ndarray:
        return read_idx(raw / name).astype(np.int64)

    return Arrays(
        train_x=images("train-images-idx3-ubyte.gz"),
        train_y=labels("train-labels-idx1-ubyte.gz"),
        test_x=images("t10k-images-idx3-ubyte.gz"),
        test_y=labels("t10k-labels-idx1-ubyte.gz"),
        classes=FMNIST_CLASSES,
    )


FMNIST = register(
    DatasetSpec(
        name="fmnist",
        description="Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 grayscale, 10 classes",
        files=tuple(
            RemoteFile(
                name=name,
                urls=tuple(m + name for m in _FMNIST_MIRRORS),
                md5=(md5,),
                content_sha256=(content,),
            )
            for name, (md5, content) in _FMNIST_FILES.items()
        ),
        loader=_load_fmnist,
        local_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        local_hint="on Debian/Ubuntu as root: apt-get install -y dataset-fashion-mnist",
    )
)


def _load_digits(_raw: Path) -> Arrays:
    """scikit-learn's bundled 8x8 digits, split 60/40 by a fixed stratified permutation."""
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


DIGITS = register(
    DatasetSpec(
        name="digits",
        description="scikit-learn's bundled UCI digits: 1797 8x8 images, 10 classes (a tiny transfer target)",
        files=(),
        loader=_load_digits,
    )
)

from . import transfer_sets  # noqa: E402,F401  (registers the transfer datasets of docs/science.md §4.4)
