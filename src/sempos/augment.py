"""Batched image augmentation on tensors: the same code on CPU and GPU, seeded by a torch.Generator.

Images stay uint8 on the device; each call draws per-sample parameters for a whole batch and applies
random resized crop + flip (one affine resample), colour jitter, grayscale, Gaussian blur and solarize.
JPEG data (sempos.data.loader) crops and flips each image at decode time, against its own size, and then
runs only the photometric part here (augment_crops).
Crops, flips and each colour operation follow torchvision's definitions (tests/unit/
test_augment_distribution.py compares the distributions); the one difference kept for speed is that
jitter runs in the fixed order brightness, contrast, saturation, hue instead of a random order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_CROP_TRIES = 10  # torchvision's RandomResizedCrop draws up to 10 candidates before its fallback


@dataclass(frozen=True)
class AugmentSpec:
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    @classmethod
    def from_cfg(cls, cfg: Mapping) -> "AugmentSpec":
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
        return cls(**kw)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def _bernoulli(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def crop_params(n: int, spec: AugmentSpec, gen: torch.Generator, device="cpu"):
    """Per-sample crop width/height (fractions of the side), centre in [-1, 1] coordinates, flip sign.

    Same distribution as torchvision's RandomResizedCrop: up to 10 (area, log-ratio) candidates per sample,
    the first that fits inside the image wins; none fitting falls back to the whole image.
    """
    area = _uniform(n * _CROP_TRIES, *spec.crop_scale, gen, device).view(n, _CROP_TRIES)
    log_r = _uniform(n * _CROP_TRIES, math.log(spec.crop_ratio[0]), math.log(spec.crop_ratio[1]), gen,
                     device).view(n, _CROP_TRIES)
    ratio = torch.exp(log_r)
    w_all, h_all = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    fits = (w_all <= 1) & (h_all <= 1)
    first = fits.to(torch.int8).argmax(1, keepdim=True)
    any_fit = fits.any(1)
    w = torch.where(any_fit, w_all.gather(1, first).squeeze(1), torch.ones_like(any_fit, dtype=w_all.dtype))
    h = torch.where(any_fit, h_all.gather(1, first).squeeze(1), torch.ones_like(any_fit, dtype=h_all.dtype))
    cx = (_uniform(n, -1, 1, gen, device)) * (1 - w)
    cy = (_uniform(n, -1, 1, gen, device)) * (1 - h)
    flip = torch.where(_bernoulli(n, spec.flip_p, gen, device), -1.0, 1.0)
    return w, h, cx, cy, flip


def crop_flip(x: torch.Tensor, spec: AugmentSpec, out_size: int, gen: torch.Generator) -> torch.Tensor:
    """Random resized crop and horizontal flip of a float batch, as one bilinear affine resample."""
    n, dev = x.shape[0], x.device
    w, h, cx, cy, flip = crop_params(n, spec, gen, dev)
    theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [n, x.shape[1], out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (f.view(-1, 1, 1, 1) * a + (1 - f.view(-1, 1, 1, 1)) * b).clamp_(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.max(1).values, x.min(1).values
    v = maxc
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, v], 1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack([torch.stack(c, 1) for c in
                         ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 0)
    return table.gather(0, i.unsqueeze(0).unsqueeze(2).expand(1, -1, 3, -1, -1)).squeeze(0)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """HSV hue shift by a per-sample fraction of a turn (torchvision's adjust_hue, batched)."""
    hsv = _rgb_to_hsv(x)
    hsv[:, 0] = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return _hsv_to_rgb(hsv).clamp_(0, 1)


def color_jitter(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    apply = _bernoulli(n, spec.jitter_p, gen, dev).view(-1, 1, 1, 1)
    b, c, s, h = spec.jitter
    out = x
    fb = _uniform(n, max(0.0, 1 - b), 1 + b, gen, dev)
    out = _blend(out, torch.zeros_like(out), fb)
    fc = _uniform(n, max(0.0, 1 - c), 1 + c, gen, dev)
    mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True).expand_as(out)
    out = _blend(out, mean, fc)
    fs = _uniform(n, max(0.0, 1 - s), 1 + s, gen, dev)
    fh = _uniform(n, -h, h, gen, dev)
    if x.shape[1] == 3:
        out = _blend(out, _gray(out).expand_as(out), fs)
        out = _hue(out, fh)
    return torch.where(apply, out, x)


def grayscale(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    apply = _bernoulli(x.shape[0], p, gen, x.device).view(-1, 1, 1, 1)
    if x.shape[1] == 1:
        return x
    return torch.where(apply, _gray(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Per-sample sigma, separable kernel of about 10% of the image side (as in SimCLR)."""
    n, ch, hgt, wid = x.shape
    apply = _bernoulli(n, spec.blur_p, gen, x.device)
    sigma = _uniform(n, *spec.blur_sigma, gen, x.device)
    radius = max(1, int(0.05 * hgt))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)
    k = k.repeat_interleave(ch, 0)
    flat = x.reshape(1, n * ch, hgt, wid)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, k.view(n * ch, 1, 1, -1), groups=n * ch)
    flat = F.conv2d(flat, k.view(n * ch, 1, -1, 1), groups=n * ch)
    return torch.where(apply.view(-1, 1, 1, 1), flat.view(n, ch, hgt, wid), x)


def solarize(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    apply = _bernoulli(x.shape[0], p, gen, x.device).view(-1, 1, 1, 1)
    return torch.where(apply & (x >= 0.5), 1 - x, x)


class Normalizer:
    """uint8 -> float in [0, 1] -> standardised with the dataset's per-channel mean and std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @classmethod
    def fit(cls, images_u8: torch.Tensor, device) -> "Normalizer":
        sample = images_u8[: min(len(images_u8), 10000)].float() / 255.0
        mean = sample.mean(dim=(0, 2, 3)).tolist()
        std = sample.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()
        return cls(mean, std, device)


def photometric(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Colour jitter, grayscale, blur and solarize of a float batch in [0, 1], in that order."""
    if spec.jitter_p > 0:
        x = color_jitter(x, spec, gen)
    if spec.grayscale_p > 0:
        x = grayscale(x, spec.grayscale_p, gen)
    if spec.blur_p > 0:
        x = gaussian_blur(x, spec, gen)
    if spec.solarize_p > 0:
        x = solarize(x, spec.solarize_p, gen)
    return x


def augment_batch(x_u8: torch.Tensor, spec: AugmentSpec, out_size: int, gen: torch.Generator,
                  norm: Normalizer) -> torch.Tensor:
    x = x_u8.float().div_(255.0)
    x = crop_flip(x, spec, out_size, gen)
    return norm(photometric(x, spec, gen))


def augment_crops(crops_u8: torch.Tensor, spec: AugmentSpec, gen: torch.Generator, norm: Normalizer) -> torch.Tensor:
    """The photometric part for views already cropped, resized and flipped (JPEG data: at decode time)."""
    return norm(photometric(crops_u8.float().div_(255.0), spec, gen))


def eval_batch(x_u8: torch.Tensor, norm: Normalizer, out_size: int | None = None) -> torch.Tensor:
    x = x_u8.float().div_(255.0)
    if out_size is not None and x.shape[-1] != out_size:
        x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=True)
    return norm(x)
