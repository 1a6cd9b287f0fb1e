"""Fashion-MNIST (Xiao et al. 2017): the official IDX files, or the Debian package's re-gzipped copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..idx import read_idx
from ..spec import Arrays, DatasetSpec, RemoteFile

_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
# Official .gz md5s (as torchvision pins them) and the sha256 of the decompressed IDX bytes,
# which is what the Debian package's re-compressed files share with the official ones.
_FILES = {
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
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def load(raw: Path) -> Arrays:
    def images(name: str) -> np.ndarray:
        return read_idx(raw / name)[:, None, :, :].copy()

    def labels(name: str) -> np.ndarray:
        return read_idx(raw / name).astype(np.int64)

    return Arrays(
        train_x=images("train-images-idx3-ubyte.gz"),
        train_y=labels("train-labels-idx1-ubyte.gz"),
        test_x=images("t10k-images-idx3-ubyte.gz"),
        test_y=labels("t10k-labels-idx1-ubyte.gz"),
        classes=CLASSES,
    )


SPEC = DatasetSpec(
    name="fmnist",
    description="Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 grayscale, 10 classes",
    files=tuple(
        RemoteFile(name=name, urls=tuple(m + name for m in _MIRRORS), md5=(md5,), content_sha256=(content,))
        for name, (md5, content) in _FILES.items()
    ),
    loader=load,
    local_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    local_hint="on Debian/Ubuntu as root: apt-get install -y dataset-fashion-mnist",
)
