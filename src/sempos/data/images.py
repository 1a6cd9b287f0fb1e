"""Decode and resize images to uint8 [N, 3, size, size] arrays, as the transfer loaders store them.

PIL bicubic; by default the shorter side is resized and the centre square kept (the standard ImageNet-style
evaluation transform: resize + centre crop), or the whole image is stretched to the square.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetError
from .archives import EXTRACTED

RESIZE_MODES = ("center_crop", "stretch")



def _resample(im, size: int, resize: str) -> np.ndarray:
    from PIL import Image

    w, h = im.size
    if resize == "center_crop":
        m = min(w, h)
        box = ((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m)
    else:
        box = (0, 0, w, h)
    if (w, h) != (size, size) or box != (0, 0, w, h):
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def _check_resize(size: int, resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise DatasetError(f"unknown resize mode '{resize}'; choose one of {RESIZE_MODES}")
    if int(size) < 1:
        raise DatasetError(f"image size must be positive, got {size}")


def _load_image(path: Path, size: int, resize: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            # JPEG only: decode at a reduced DCT scale, never below twice the target size (fast on 512 px photos).
            im.draft(None, (2 * size, 2 * size))
            return _resample(im.convert("RGB"), size, resize)
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DatasetError(f"cannot decode image {path} ({exc}); the extraction may be damaged: delete "
                           f"data/raw/{EXTRACTED}/<name>/ and rerun prepare") from exc


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def load_images(paths: Sequence[Path], size: int, resize: str = "center_crop") -> np.ndarray:
    """Decode and resize images in parallel (PIL releases the GIL); uint8 [N, 3, size, size], input order."""
    _check_resize(size, resize)
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(_threads()) as pool:
        for i, arr in enumerate(pool.map(lambda p: _load_image(Path(p), size, resize), paths)):
            out[i] = arr
    return out


def resize_array(x: np.ndarray, size: int, resize: str = "center_crop") -> np.ndarray:
    """uint8 NCHW RGB array -> contiguous uint8 [N, 3, size, size]; no resampling when already that size."""
    from PIL import Image

    _check_resize(size, resize)
    if x.shape[-2:] == (size, size):
        return np.ascontiguousarray(x)
    out = np.empty((len(x), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(_threads()) as pool:
        for i, arr in enumerate(pool.map(lambda im: _resample(Image.fromarray(im.transpose(1, 2, 0)), size, resize),
                                         x)):
            out[i] = arr
    return out
