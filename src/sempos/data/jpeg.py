"""Per-image JPEG operations: header facts, decode, pack-time normalisation, crop geometry, crops.

The geometry of a random resized crop is drawn for a whole batch at once from a torch.Generator, against
each image's own height and width (torchvision's RandomResizedCrop.get_params, vectorised), so the main
process can fix every random number of a step before any worker decodes a byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as TF

_CROP_TRIES = 10
# Start-of-frame markers of sequential (baseline / extended) JPEGs: what nvJPEG's batched path decodes.
_SEQUENTIAL_SOF = (0xC0, 0xC1)
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(start-of-frame marker, number of colour components) of a JPEG, or None when it is not a JPEG."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            return (marker, data[i + 9]) if i + 9 < n else None
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + seg
    return None


def as_tensor(data: bytes | bytearray | memoryview) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def decode_rgb(data: bytes | torch.Tensor) -> torch.Tensor:
    """A JPEG as uint8 [3, H, W] (grayscale and CMYK files are converted to RGB)."""
    t = data if isinstance(data, torch.Tensor) else as_tensor(data)
    return decode_jpeg(t, mode=ImageReadMode.RGB)


@dataclass(frozen=True)
class Packed:
    data: bytes
    height: int
    width: int
    reencoded: bool


def pack_image(data: bytes, max_side: int | None, quality: int) -> Packed:
    """The bytes a shard stores for one source image, and its size.

    Originals are kept byte for byte when they are sequential 3-component JPEGs within the size cap; anything
    else (PNG or CMYK files named .JPEG, progressive or grayscale JPEGs, a shorter side above `max_side`) is
    decoded, resized (shorter side to max_side, antialiased) and re-encoded as an RGB baseline JPEG, so the
    loader's batched GPU decoder only ever sees one kind of file. Raises RuntimeError (from torchvision) when
    the bytes cannot be decoded.
    """
    frame = jpeg_frame(data)
    t = as_tensor(data)
    img = decode_rgb(t) if frame is not None else decode_image(t, mode=ImageReadMode.RGB)
    h, w = int(img.shape[-2]), int(img.shape[-1])
    too_big = max_side is not None and min(h, w) > max_side
    if frame is not None and frame[0] in _SEQUENTIAL_SOF and frame[1] == 3 and not too_big:
        return Packed(bytes(data), h, w, False)
    if too_big:
        img = TF.resize(img, [max_side], antialias=True)  # shorter side -> max_side, aspect kept
        h, w = int(img.shape[-2]), int(img.shape[-1])
    return Packed(encode_jpeg(img, quality=quality).numpy().tobytes(), h, w, True)


@dataclass(frozen=True)
class CropSpec:
    """The geometric part of an augmentation: random resized crop (scale, ratio) + horizontal flip."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5

    @classmethod
    def of(cls, aug) -> "CropSpec":
        """From a sempos.augment.AugmentSpec (or anything with crop_scale / crop_ratio / flip_p)."""
        return cls(tuple(aug.crop_scale), tuple(getattr(aug, "crop_ratio", (3 / 4, 4 / 3))), float(aug.flip_p))


def crop_boxes(hw: torch.Tensor, spec: CropSpec, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random resized crop boxes [n, 4] (top, left, height, width) in pixels of each image, and flips [n].

    Same distribution as torchvision's RandomResizedCrop: up to 10 (area, log-ratio) candidates per image, the
    first that fits wins; otherwise the central crop with the ratio clamped. Draw order (fixed): areas, ratios,
    vertical offsets, horizontal offsets, flips, each for the whole batch.
    """
    hw = torch.as_tensor(hw, dtype=torch.float64).view(-1, 2)
    n = hw.shape[0]
    H, W = hw[:, 0:1], hw[:, 1:2]
    lo, hi = spec.scale
    area = (torch.rand(n, _CROP_TRIES, generator=gen, dtype=torch.float64) * (hi - lo) + lo) * H * W
    llo, lhi = math.log(spec.ratio[0]), math.log(spec.ratio[1])
    ratio = torch.exp(torch.rand(n, _CROP_TRIES, generator=gen, dtype=torch.float64) * (lhi - llo) + llo)
    w_all = torch.round(torch.sqrt(area * ratio))
    h_all = torch.round(torch.sqrt(area / ratio))
    fits = (w_all > 0) & (w_all <= W) & (h_all > 0) & (h_all <= H)
    first = fits.to(torch.int8).argmax(1, keepdim=True)
    any_fit = fits.any(1)
    # The fallback: the whole image, or its central crop at the nearest allowed ratio.
    H1, W1 = H.squeeze(1), W.squeeze(1)
    in_ratio = W1 / H1
    fb_w = torch.where(in_ratio > spec.ratio[1], torch.round(H1 * spec.ratio[1]), W1)
    fb_h = torch.where(in_ratio < spec.ratio[0], torch.round(W1 / spec.ratio[0]), H1)
    w = torch.where(any_fit, w_all.gather(1, first).squeeze(1), fb_w)
    h = torch.where(any_fit, h_all.gather(1, first).squeeze(1), fb_h)
    ui = torch.rand(n, generator=gen, dtype=torch.float64)
    uj = torch.rand(n, generator=gen, dtype=torch.float64)
    top = torch.where(any_fit, torch.floor(ui * (H1 - h + 1)), torch.floor((H1 - h) / 2))
    left = torch.where(any_fit, torch.floor(uj * (W1 - w + 1)), torch.floor((W1 - w) / 2))
    flip = torch.rand(n, generator=gen) < spec.flip_p
    boxes = torch.stack([top, left, h, w], 1).long()
    return boxes, flip


def crop_resize(img: torch.Tensor, box, size: int, flip: bool) -> torch.Tensor:
    """img[..., top:top+h, left:left+w] resized to size x size (bilinear, antialiased), flipped if asked."""
    top, left, h, w = (int(v) for v in box)
    out = TF.resized_crop(img, top, left, h, w, [size, size], antialias=True)
    return out.flip(-1) if flip else out


def resize_center_crop(img: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """The evaluation transform: shorter side to `resize` (antialiased), then the central crop x crop."""
    return TF.center_crop(TF.resize(img, [resize], antialias=True), [crop, crop])


def eval_resize_for(crop: int) -> int:
    """The conventional test-time resize for a crop size: 256 for 224 (the 0.875 crop ratio)."""
    return int(round(crop / 0.875))
