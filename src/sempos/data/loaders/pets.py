"""Oxford-IIIT Pets (Parkhi et al. 2012): images and annotations archives, trainval/test lists."""

from __future__ import annotations

from pathlib import Path

from ..archives import extracted
from ..images import load_images
from ..spec import Arrays, remote_file, transfer_spec
from .common import arrays, lines

_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"


def load(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    """trainval / test; Pets publishes no separate validation split (prepare draws a stratified one)."""
    raw = Path(raw)
    images = extracted(raw, "images.tar.gz") / "images"
    ann = extracted(raw, "annotations.tar.gz") / "annotations"
    names: dict[int, str] = {}

    def part(split):
        rows = [ln.split() for ln in lines(ann / f"{split}.txt")]  # "<image id> <class 1..37> <species> <breed>"
        for r in rows:
            names[int(r[1]) - 1] = " ".join(w.title() for w in r[0].rsplit("_", 1)[0].split("_"))
        return load_images([images / f"{r[0]}.jpg" for r in rows], size, resize), [int(r[1]) - 1 for r in rows]

    (tx, ty), (vx, vy) = part("trainval"), part("test")
    return arrays(tx, ty, vx, vy, [names[i] for i in sorted(names)])


SPEC = transfer_spec(
    "pets", "Oxford-IIIT Pets (Parkhi et al. 2012): 3,680/3,669 images, 37 breeds",
    [remote_file("images.tar.gz", [_URL + "images.tar.gz"], md5="5c4f3ee8e5d25df40f4fd59a7f44e54c"),
     remote_file("annotations.tar.gz", [_URL + "annotations.tar.gz"], md5="95a8c909bbe2e81eed6a22bccdf3f68f")],
    load, "mean_per_class", "trainval 3,680 / test 3,669", 37, 64)
