import torch

from sempos.augment import AugmentSpec, Normalizer, augment_batch, crop_flip, gaussian_blur, solarize

IDENT = AugmentSpec(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def _imgs(n=8, c=3, s=16, seed=0):
    return torch.randint(0, 256, (n, c, s, s), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_identity_settings_reproduce_the_input():
    x = _imgs()
    norm = Normalizer([0.0] * 3, [1.0] * 3, "cpu")
    out = augment_batch(x, IDENT, 16, _gen(0), norm)
    assert torch.allclose(out, x.float() / 255, atol=1e-5)


def test_flip_always():
    x = _imgs().float() / 255
    spec = AugmentSpec(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0)
    assert torch.allclose(crop_flip(x, spec, 16, _gen(0)), x.flip(-1), atol=1e-5)


def test_same_seed_same_views_different_seed_different_views():
    x = _imgs()
    norm = Normalizer([0.5] * 3, [0.25] * 3, "cpu")
    spec = AugmentSpec(blur_p=0.5, solarize_p=0.2)
    a = augment_batch(x, spec, 12, _gen(7), norm)
    b = augment_batch(x, spec, 12, _gen(7), norm)
    c = augment_batch(x, spec, 12, _gen(8), norm)
    assert a.shape == (8, 3, 12, 12)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_grayscale_single_channel_images_pass_through_colour_ops():
    x = _imgs(c=1)
    norm = Normalizer([0.0], [1.0], "cpu")
    out = augment_batch(x, AugmentSpec(), 16, _gen(1), norm)
    assert out.shape == (8, 1, 16, 16) and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


def test_blur_preserves_constant_images_and_mean():
    x = torch.full((4, 3, 16, 16), 0.3)
    spec = AugmentSpec(blur_p=1.0)
    assert torch.allclose(gaussian_blur(x, spec, _gen(0)), x, atol=1e-6)


def test_solarize_inverts_bright_pixels_only():
    x = torch.tensor([0.2, 0.7]).view(1, 1, 1, 2)
    out = solarize(x, 1.0, _gen(0))
    assert torch.allclose(out.flatten(), torch.tensor([0.2, 0.3]))
