"""The trainer's augmentation on the GPU: seeded, equal to the CPU path given the same random draws, and
distributed like it (tests/unit/test_augment_distribution.py holds both devices to torchvision)."""

import pytest
import torch

import sempos.augment as aug
from sempos.augment import AugmentSpec, Normalizer, augment_batch

pytestmark = pytest.mark.cuda

FULL = AugmentSpec(blur_p=0.5, solarize_p=0.2)  # every operation on, as SimCLR/BYOL recipes use them


def images(n: int, c: int = 3, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, c, 1, 1, generator=g) * 200
    ramp = torch.linspace(0, 55, size).view(1, 1, 1, size)
    noise = torch.rand(n, c, size, size, generator=g) * 30
    return (base + ramp + noise).clamp(0, 255).to(torch.uint8)


def run(x_u8: torch.Tensor, device: torch.device, seed: int, out_size: int = 32) -> torch.Tensor:
    norm = Normalizer([0.5] * x_u8.shape[1], [0.25] * x_u8.shape[1], device)
    gen = torch.Generator(device=device).manual_seed(seed)
    return augment_batch(x_u8.to(device), FULL, out_size, gen, norm)


def test_same_seed_gives_the_same_views_on_the_device(cuda_device):
    x = images(256)
    a, b, c = run(x, cuda_device, 7), run(x, cuda_device, 7), run(x, cuda_device, 8)
    assert a.device.type == cuda_device.type
    assert torch.equal(a, b)
    assert (a - c).abs().flatten(1).max(1).values.gt(1e-3).float().mean() > 0.9  # another seed, other views


def test_device_path_equals_the_cpu_path_given_the_same_draws(cuda_device, monkeypatch, record_property):
    """Parameters drawn on the CPU and moved: the device's crop, flip, jitter, grayscale, blur and solarize
    must then compute what the CPU computes (up to float rounding; solarize's threshold may flip a pixel)."""
    real_uniform, real_bernoulli = aug._uniform, aug._bernoulli
    cpu_gen = {}

    def uniform(n, lo, hi, gen, device):
        return real_uniform(n, lo, hi, cpu_gen["g"], "cpu").to(device)

    def bernoulli(n, p, gen, device):
        return real_bernoulli(n, p, cpu_gen["g"], "cpu").to(device)

    monkeypatch.setattr(aug, "_uniform", uniform)
    monkeypatch.setattr(aug, "_bernoulli", bernoulli)
    x = images(512)
    outs = []
    for device in (torch.device("cpu"), cuda_device):
        cpu_gen["g"] = torch.Generator().manual_seed(3)
        outs.append(run(x, device, 0, out_size=24).cpu())
    diff = (outs[0] - outs[1]).abs()
    record_property("max_abs_diff", float(diff.max()))
    record_property("share_pixels_over_1e-3", float((diff > 1e-3).float().mean()))
    assert (diff > 1e-3).float().mean() < 1e-3  # solarize's x >= 0.5 may flip a few pixels at the threshold
    assert diff.median() < 1e-5


def test_device_views_are_distributed_like_cpu_views(cuda_device, record_property):
    """Own generators on each device (Philox on CUDA, Mersenne Twister on the CPU): per-view statistics must
    still have the same distribution."""
    x = images(4000)
    cpu, dev = run(x, torch.device("cpu"), 1).cpu(), run(x, cuda_device, 2).cpu()
    worst = 0.0
    for stat in (lambda t: t.mean(dim=(1, 2, 3)), lambda t: t.std(dim=(1, 2, 3)),
                 lambda t: (t[:, 0] - t[:, 2]).abs().mean(dim=(1, 2))):  # colour left after jitter/grayscale
        a, b = stat(cpu), stat(dev)
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            gap = abs(torch.quantile(a, q).item() - torch.quantile(b, q).item()) / (a.std().item() + 1e-6)
            worst = max(worst, gap)
    record_property("worst_quantile_gap_in_sd", round(worst, 4))
    # 4000 views a side: one quantile gap has a sampling sd of ~0.03 sd, the worst of 15 stays under ~0.1
    assert worst < 0.15
