"""The batched tensor augmentation matches torchvision's reference transforms in distribution.

Each test runs on the CPU and, marked `cuda`, on the GPU (skipped without one): the references stay
torchvision's CPU transforms, so the GPU path is held to the same numbers.
"""

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import ColorJitter, RandomResizedCrop
from torchvision.transforms import functional as TF

from sempos.augment import AugmentSpec, color_jitter, crop_params, grayscale

N = 4000


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    return torch.device("cpu") if request.param == "cpu" else request.getfixturevalue("cuda_device")


def _gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def _torchvision_crops(size=64, scale=(0.2, 1.0), n=N):
    torch.manual_seed(0)
    img = torch.zeros(1, size, size)
    areas, ratios, cxs = [], [], []
    for _ in range(n):
        i, j, h, w = RandomResizedCrop.get_params(img, scale=list(scale), ratio=[3 / 4, 4 / 3])
        areas.append(h * w / size**2)
        ratios.append(w / h)
        cxs.append((j + w / 2) / size * 2 - 1)
    return np.array(areas), np.array(ratios), np.array(cxs)


def test_crop_area_aspect_and_position_match_torchvision(device):
    w, h, cx, _, _ = (t.cpu() for t in crop_params(N, AugmentSpec(), _gen(0, device), device))
    ours_area, ours_ratio = (w * h).numpy(), (w / h).numpy()
    tv_area, tv_ratio, tv_cx = _torchvision_crops()
    assert abs(ours_area.mean() - tv_area.mean()) < 0.02
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(ours_area, q) - np.quantile(tv_area, q)) < 0.04
    assert abs(np.log(ours_ratio).mean() - np.log(tv_ratio).mean()) < 0.02
    assert abs(np.log(ours_ratio).std() - np.log(tv_ratio).std()) < 0.03
    assert abs(cx.numpy().mean()) < 0.03 and abs(cx.numpy().std() - tv_cx.std()) < 0.05
    assert (w <= 1).all() and (h <= 1).all() and ((cx.abs() + w) <= 1 + 1e-6).all()


def test_flip_rate(device):
    flip = crop_params(N, AugmentSpec(flip_p=0.5), _gen(1, device), device)[4].cpu()
    assert abs((flip < 0).float().mean().item() - 0.5) < 0.03


def _jitter_stats(img: torch.Tensor, ours_spec: AugmentSpec, tv: ColorJitter, device):
    batch = img.expand(N, -1, -1, -1).clone().to(device)
    ours = color_jitter(batch, ours_spec, _gen(2, device)).cpu()
    torch.manual_seed(3)
    ref = torch.stack([tv(img[0]) for _ in range(N)])
    return ours, ref


def _close_quantiles(a: torch.Tensor, b: torch.Tensor, tol: float):
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        qa, qb = torch.quantile(a, q).item(), torch.quantile(b, q).item()
        assert abs(qa - qb) < tol, (q, qa, qb)


def test_brightness_and_contrast_match_torchvision(device):
    g = _gen(5)
    img = torch.rand(1, 3, 8, 8, generator=g) * 0.6 + 0.2
    for b, c in ((0.4, 0.0), (0.0, 0.4)):
        spec = AugmentSpec(jitter_p=1.0, jitter=(b, c, 0.0, 0.0))
        ours, ref = _jitter_stats(img, spec, ColorJitter(brightness=b, contrast=c), device)
        _close_quantiles(ours.mean(dim=(1, 2, 3)), ref.mean(dim=(1, 2, 3)), 0.02)
        _close_quantiles(ours.std(dim=(1, 2, 3)), ref.std(dim=(1, 2, 3)), 0.02)


def test_saturation_matches_torchvision(device):
    img = torch.tensor([0.8, 0.3, 0.2]).view(1, 3, 1, 1).expand(1, 3, 4, 4).clone()
    spec = AugmentSpec(jitter_p=1.0, jitter=(0.0, 0.0, 0.4, 0.0))
    ours, ref = _jitter_stats(img, spec, ColorJitter(saturation=0.4), device)
    chroma = lambda t: (t.max(1).values - t.min(1).values).mean(dim=(1, 2))  # noqa: E731
    _close_quantiles(chroma(ours), chroma(ref), 0.02)


def test_hue_shift_keeps_luma_and_spreads_hue_like_torchvision(device):
    img = torch.tensor([0.7, 0.3, 0.2]).view(1, 3, 1, 1).expand(1, 3, 4, 4).clone()
    spec = AugmentSpec(jitter_p=1.0, jitter=(0.0, 0.0, 0.0, 0.1))
    ours, ref = _jitter_stats(img, spec, ColorJitter(hue=0.1), device)

    def hue(t):
        r, g, b = t[:, 0, 0, 0], t[:, 1, 0, 0], t[:, 2, 0, 0]
        return torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b)

    # YIQ rotation approximates HSV hue shift: same centre, similar spread (within 35%).
    assert abs(hue(ours).mean() - hue(ref).mean()) < 0.05
    assert 0.65 < (hue(ours).std() / hue(ref).std()).item() < 1.35


def test_jitter_probability_and_grayscale_rate(device):
    img = torch.rand(N, 3, 4, 4, generator=_gen(6))
    out = color_jitter(img.to(device), AugmentSpec(jitter_p=0.8), _gen(7, device)).cpu()
    changed = (out - img).abs().flatten(1).max(1).values > 1e-6
    assert abs(changed.float().mean().item() - 0.8) < 0.03
    gray = grayscale(img.to(device), 0.2, _gen(8, device)).cpu()
    is_gray = (gray[:, 0] == gray[:, 1]).flatten(1).all(1) & (gray[:, 1] == gray[:, 2]).flatten(1).all(1)
    assert abs(is_gray.float().mean().item() - 0.2) < 0.03
    assert torch.allclose(gray[is_gray][:, 0], TF.rgb_to_grayscale(img[is_gray])[:, 0], atol=1e-5)


def test_batched_hue_equals_torchvision_adjust_hue_per_sample(device):
    from sempos.augment import _hue

    img = torch.rand(6, 3, 5, 5, generator=_gen(9))
    shifts = torch.tensor([-0.5, -0.3, -0.05, 0.0, 0.1, 0.45])
    ours = _hue(img.clone().to(device), shifts.to(device)).cpu()
    for k in range(6):
        assert torch.allclose(ours[k], TF.adjust_hue(img[k], float(shifts[k])), atol=1e-4), k
