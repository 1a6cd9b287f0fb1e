"""The per-step seeds: a step's augmentation (step_generator) and crop geometry (geometry_seed) are fixed
functions of (seed, epoch, step, rank), so a resumed run draws what an uninterrupted one draws. Pinned by
value: a changed formula would silently change every run's augmentations (and no resume test sees it)."""

import torch

from sempos.train.trainer import geometry_seed, step_generator

# seed 3, epoch 2, step 5, rank 1: 3 * 1_000_003 + 2 * 100_003 + 5 * 7 + 1 * 7_777_777 + offset
TERMS = 3_000_009 + 200_006 + 35


def test_geometry_seed_by_value():
    assert geometry_seed(3, 2, 5, 1) == TERMS + 7_777_777 + 54_321 == 11_032_148
    assert geometry_seed(3, 2, 5) == TERMS + 54_321 == 3_254_371  # rank 0 by default
    assert type(geometry_seed(3, 2, 5, 1)) is int
    # reduced modulo 2**63 (a valid torch seed): 2**63 * 1_000_003 vanishes
    assert geometry_seed(2**63, 0, 0) == 54_321


def test_step_generator_by_value():
    cpu = torch.device("cpu")
    assert step_generator(cpu, 3, 2, 5, 1).initial_seed() == TERMS + 7_777_777 + 12_345 == 10_990_172
    assert step_generator(cpu, 3, 2, 5).initial_seed() == TERMS + 12_345 == 3_212_395
    assert step_generator(cpu, 2**63, 0, 0).initial_seed() == 12_345
    g = step_generator(cpu, 3, 2, 5, 1)
    assert g.device == cpu
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=torch.Generator().manual_seed(10_990_172)))


def test_crop_geometry_and_photometric_draws_are_seeded_apart():
    assert geometry_seed(3, 2, 5, 1) - step_generator(torch.device("cpu"), 3, 2, 5, 1).initial_seed() == 54_321 - 12_345
