"""FGVC Aircraft 2013b (Maji et al. 2013): 100 variants; downloaded only with a user-supplied sha256.

torchvision pins NO checksum for it (fgvc_aircraft.py calls download_and_extract_archive without md5).
sempos never accepts an unverified file and does not invent a checksum: the download stage fetches it only
once the user supplies the sha256 of a copy they trust in SEMPOS_AIRCRAFT_SHA256 (the URL list stays empty
until then, so nothing is downloaded in vain and the error names this fix).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import DatasetError
from ..archives import extracted
from ..images import load_images
from ..spec import Arrays, RemoteFile, remote_file, transfer_spec
from .common import arrays, lines, positions

SHA256_ENV = "SEMPOS_AIRCRAFT_SHA256"
URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"


def aircraft_file(sha256: str | None) -> RemoteFile:
    """The FGVC Aircraft archive entry: downloadable and verifiable only with a user-supplied sha256."""
    sha = (sha256 or "").strip().lower() or None
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise DatasetError(f"{SHA256_ENV}='{sha256}' is not a sha256 hex digest (64 hex digits)")
    return remote_file("fgvc-aircraft-2013b.tar.gz", [URL] if sha else [], sha256=sha)


def load(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    """train = images_variant_trainval (its images_variant_val part is `val_idx`), test = images_variant_test."""
    data = extracted(Path(raw), "fgvc-aircraft-2013b.tar.gz") / "fgvc-aircraft-2013b" / "data"
    classes = lines(data / "variants.txt")
    index = {c: i for i, c in enumerate(classes)}

    def rows(split):
        return [ln.split(" ", 1) for ln in lines(data / f"images_variant_{split}.txt")]

    def part(split):
        r = rows(split)
        return load_images([data / "images" / f"{i}.jpg" for i, _ in r], size, resize), [index[v] for _, v in r]

    (tx, ty), (vx, vy) = part("trainval"), part("test")
    val = positions([i for i, _ in rows("trainval")], [i for i, _ in rows("val")], "images_variant_val.txt")
    return arrays(tx, ty, vx, vy, classes, val_idx=val)


_FILE = aircraft_file(os.environ.get(SHA256_ENV))
SPEC = transfer_spec(
    "aircraft", "FGVC Aircraft 2013b (Maji et al. 2013): 6,667/3,333 images, 100 variants",
    [_FILE], load, "mean_per_class",
    "images_variant_trainval 6,667 (images_variant_val: the validation split) / images_variant_test 3,333", 100, 64,
    local_hint=(f"no checksum is pinned for FGVC Aircraft (torchvision pins none). Download {URL}, "
                f"check it, then export {SHA256_ENV}=<its sha256> and rerun the download stage"),
    checksum="user-supplied sha256" if _FILE.sha256 else "missing: supply " + SHA256_ENV)
