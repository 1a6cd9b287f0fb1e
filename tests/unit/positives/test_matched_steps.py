"""Compute-matched controls: the host trained for a variant's number of steps, on augmented pairs only."""

from collections import Counter

import pytest
import torch

from conftest import fake_prepared, tiny_settings
from sempos.errors import ConfigError
from sempos.positives.pairs import PairSource
from sempos.positives.sources import build_positives
from sempos.runtime import resolve
from sempos.train.trainer import PretrainJob, Trainer

RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}


def test_pairs_per_epoch_cycles_the_augmented_pairs_evenly_and_deterministically():
    base = torch.arange(10, 60)  # 50 images
    ctrl = PairSource(base, pairs_per_epoch=120)  # a variant with 70 extra pairs: 2.4 passes
    e = ctrl.for_epoch(3, 1)
    assert len(ctrl) == 120 and e.shape == (120, 2)
    assert (e[:, 0] == e[:, 1]).all() and set(e[:, 0].tolist()) <= set(base.tolist())  # augmented pairs only
    assert set(Counter(e[:, 0].tolist()).values()) <= {2, 3}  # every image 2 or 3 times: fresh permutations
    assert torch.equal(e, ctrl.for_epoch(3, 1)) and not torch.equal(e, ctrl.for_epoch(3, 2))
    # equal_steps is the special case pairs_per_epoch = len(base_idx)
    extra = torch.stack([base, base.flip(0)], 1)
    assert torch.equal(PairSource(base, extra, equal_steps=True).for_epoch(0, 0),
                       PairSource(base, extra, pairs_per_epoch=50).for_epoch(0, 0))
    with pytest.raises(ValueError, match="not both"):
        PairSource(base, extra, equal_steps=True, pairs_per_epoch=50)
    with pytest.raises(ValueError, match="positive integer"):
        PairSource(base, pairs_per_epoch=0)


def test_control_is_sized_by_its_variant_and_trains_on_augmented_pairs_only():
    data = fake_prepared()
    pool = data["splits"]["pretrain"]
    variant = build_positives({"positives": {"source": "oracle", "mix": "add"}}, data, seed=1)
    assert len(variant.pairs) == 2 * len(pool)  # D ∪ SPPS with one oracle pair per image
    ctrl = build_positives({"positives": {"source": "augment", "match_steps": "v"}}, data, seed=1,
                           match=variant.pairs)
    assert len(ctrl.pairs) == len(variant.pairs)
    assert ctrl.report == {"source": "augment", "match_steps": "v", "num_pairs": 2 * len(pool),
                           "augmented_pairs": len(pool)}
    e = ctrl.pairs.for_epoch(1, 0)
    assert (e[:, 0] == e[:, 1]).all() and Counter(e[:, 0].tolist()) == Counter(pool.tolist() * 2)
    with pytest.raises(ConfigError, match="variant's pair source"):
        build_positives({"positives": {"source": "augment", "match_steps": "v"}}, data, seed=1)
    with pytest.raises(ConfigError, match="needs source augment"):
        build_positives({"positives": {"source": "oracle", "match_steps": "v"}}, data, seed=1, match=variant.pairs)


def test_control_takes_exactly_the_variants_optimiser_steps(tmp_path):
    data = fake_prepared()
    variant = build_positives({"positives": {"source": "random", "mix": "add"}}, data, seed=0)
    ctrl = build_positives({"positives": {"source": "augment", "match_steps": "v"}}, data, seed=0,
                           match=variant.pairs)
    host = build_positives({}, data, seed=0)

    def trainer(pos, name):
        job = PretrainJob(tiny_settings("simclr", epochs=1), 0, tmp_path / name, data, pairs=pos.pairs)
        return Trainer(job, resolve(RT))

    tv, tc, th = trainer(variant, "v"), trainer(ctrl, "c"), trainer(host, "h")
    bv, bc, bh = tv.budget(), tc.budget(), th.budget()
    assert bv["optimizer_steps"] == bc["optimizer_steps"] == 2 * len(data["splits"]["pretrain"]) // 32
    assert bh["optimizer_steps"] == len(data["splits"]["pretrain"]) // 32  # 224 images / batch 32 = 7
    assert bc["pairs_seen"] == bc["optimizer_steps"] * 32 and bc["epochs"] == 1
    tc.fit()
    assert [h["steps"] for h in tc.history] == [0, bc["optimizer_steps"]]  # the convergence plot's x axis
