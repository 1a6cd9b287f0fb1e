"""Every algorithm trains through the shared trainer on a tiny network (switches, banks and DDP are
covered in test_neighbour_algos.py and test_ddp_bank.py)."""

import math

import pytest
import torch

from conftest import fake_prepared, tiny_settings
from sempos.runtime import resolve
from sempos.train.optim import lr_at
from sempos.train.trainer import PretrainJob, Trainer

RT = {"device": "cpu", "threads": 2, "precision": "fp32", "channels_last": False, "progress": False}
SMALL = {"byol": {}, "simsiam": {}, "nnclr": {"bank_size": 64}, "mocov3": {},
         "snclr": {"bank_size": 64, "k": 3}, "simclr": {}, "mocov2": {"queue_size": 64}}


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_each_algorithm_trains_and_loss_goes_down(tmp_path, algo):
    data = fake_prepared(n_train=192)
    t = Trainer(PretrainJob(tiny_settings(algo, epochs=3, **SMALL[algo]), 0, tmp_path, data), resolve(RT))
    init = {k: v.clone() for k, v in t.model.backbone.state_dict().items()}
    t.fit()
    losses = [h["loss"] for h in t.history[1:]]
    assert all(math.isfinite(v) for v in losses)
    # 160 pretraining images, batch 32: 5 steps per epoch; each row logs the lr of its epoch's last step.
    base = 0.05 * 32 / 256
    assert [h["epoch"] for h in t.history] == [0, 1, 2, 3] and math.isnan(t.history[0]["loss"])
    assert [h["lr"] for h in t.history[1:]] == pytest.approx([lr_at(5 * e + 4, 15, 0, base) for e in range(3)])
    assert any(not torch.equal(init[k], v) for k, v in t.model.backbone.state_dict().items())
    if algo not in ("mocov2", "nnclr", "snclr"):
        # Queue/bank methods see harder negatives as their memory fills, so only these must go down.
        assert losses[-1] < losses[0], losses


def test_algorithm_checks_its_own_hyper_parameters_without_config_validation():
    from sempos.algos.simclr import SimCLR
    from sempos.errors import ConfigError
    from sempos.models.resnet import build_backbone

    bb = build_backbone("resnet18_cifar", width=2, in_channels=1)
    with pytest.raises(ConfigError, match=r"simclr: unknown hyper-parameters \['queue_size', 'temprature'\]"):
        SimCLR(bb, {"temprature": 0.5, "queue_size": 8}, 10)
    # The method entry's algo and positives ride along; given values override the defaults, no others.
    m = SimCLR(bb, {"algo": "simclr", "positives": {"source": "augment"}, "temperature": 0.5}, 10)
    assert m.hp == {"temperature": 0.5, "proj_hidden": 512, "proj_dim": 128}
    assert m.num_train == 10 and m.backbone is bb


def test_simsiam_heads_follow_the_paper():
    """SimSiam: a 3-layer projector ending in BN (no affine), a 2-layer bottleneck predictor."""
    from torch import nn

    from sempos.algos.simsiam import SimSiam
    from sempos.models.resnet import build_backbone

    m = SimSiam(build_backbone("resnet18_cifar", width=2, in_channels=1), {"proj_hidden": 12, "proj_dim": 10,
                                                                           "pred_hidden": 6}, 10)
    lin = [(l.in_features, l.out_features) for l in m.projector if isinstance(l, nn.Linear)]
    assert lin == [(m.backbone.feat_dim, 12), (12, 12), (12, 10)]
    assert isinstance(m.projector[-1], nn.BatchNorm1d) and not m.projector[-1].affine
    assert [(l.in_features, l.out_features) for l in m.predictor if isinstance(l, nn.Linear)] == [(10, 6), (6, 10)]
    assert not isinstance(m.predictor[-1], nn.BatchNorm1d) and m.momentum_pairs() == []
