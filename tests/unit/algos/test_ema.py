"""The momentum (EMA) branch: one update against a hand computation, the momentum schedule at given
steps, and the trainer's order (optimiser step, then EMA with the step's momentum)."""

import math

import pytest
import torch
from torch import nn

from conftest import fake_prepared, tiny_settings
from sempos.algos import registry
from sempos.algos.base import ema_update
from sempos.models.resnet import build_backbone
from sempos.runtime import resolve
from sempos.train import trainer as trainer_module
from sempos.train.trainer import PretrainJob, Trainer

HEADS = {"proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16}
RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}


def _linear(weight, bias):
    m = nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([weight]))
        m.bias.copy_(torch.tensor([bias]))
    return m


def test_one_ema_step_moves_the_target_a_fraction_1_minus_m_towards_the_online_weights():
    online, target = _linear([3.0, 5.0], 1.0), _linear([1.0, 2.0], -1.0)
    online2, target2 = _linear([0.0, 10.0], 0.0), _linear([10.0, 0.0], 0.0)
    ema_update([(online, target), (online2, target2)], 0.9)
    # target <- 0.9 * target + 0.1 * online, every parameter of every pair
    assert target.weight[0].tolist() == pytest.approx([1.2, 2.3]) and target.bias.item() == pytest.approx(-0.8)
    assert target2.weight[0].tolist() == pytest.approx([9.0, 1.0])
    assert online.weight.tolist() == [[3.0, 5.0]]  # the online branch is left alone


def _algo(name, **hp):
    cls = registry.get(name)
    heads = {k: v for k, v in HEADS.items() if k in cls.HPARAMS}
    return cls(build_backbone("resnet18_cifar", width=2, in_channels=1), {**heads, **hp}, 10)


@pytest.mark.parametrize("progress,m", [(0.0, 0.99), (0.25, 1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2),
                                        (0.5, 0.995), (0.75, 1 - 0.01 * (math.cos(3 * math.pi / 4) + 1) / 2),
                                        (1.0, 1.0)])
def test_cosine_momentum_rises_from_ema_to_one(progress, m):
    assert _algo("byol").ema_momentum(progress) == pytest.approx(m, abs=1e-12)


def test_constant_momentum_without_the_cosine_schedule():
    mocov2 = _algo("mocov2", queue_size=8, ema=0.9)
    assert [mocov2.ema_momentum(p) for p in (0.0, 0.5, 0.99)] == [0.9, 0.9, 0.9]
    assert _algo("simclr").momentum_pairs() == []
    # Without an EMA target the momentum is 0: the "target" is the online network itself (SimSiam = BYOL, m = 0).
    assert [_algo(name).ema_momentum(0.5) for name in ("simclr", "simsiam", "nnclr")] == [0.0, 0.0, 0.0]


def _trainer(tmp_path, epochs):
    data = fake_prepared(n_train=96)  # 64 pretraining images: 2 steps of 32 per epoch
    return Trainer(PretrainJob(tiny_settings("byol", epochs=epochs, **HEADS), 0, tmp_path, data), resolve(RT))


def test_trainer_updates_the_target_after_the_optimiser_step(tmp_path):
    t = _trainer(tmp_path, epochs=1)
    t.model.train()
    before = [p.detach().clone() for p in t.model.projector_t.parameters()]
    t._step(0, 0, t.pairs.for_epoch(0, 0))
    online = list(t.model.projector.parameters())
    for old, o, new in zip(before, online, t.model.projector_t.parameters()):
        # progress 0: m = ema = 0.99, applied to the online weights after this step's update
        torch.testing.assert_close(new, 0.99 * old + 0.01 * o.detach(), rtol=1e-6, atol=1e-7)


def test_trainer_feeds_the_momentum_of_each_steps_progress(tmp_path, monkeypatch):
    seen = []
    real = trainer_module.ema_update
    monkeypatch.setattr(trainer_module, "ema_update", lambda pairs, m: seen.append(m) or real(pairs, m))
    t = _trainer(tmp_path, epochs=2)
    t.fit()
    total = 4  # 2 epochs x 2 steps; step s has progress s / 4
    assert seen == pytest.approx([1 - 0.01 * (math.cos(math.pi * s / total) + 1) / 2 for s in range(total)])
