"""Rank 1 of 2, simulated in one process: the gathered keys put this rank's positives at offset B + i.

tests/unit/test_ddp_bank.py checks the same under two real gloo processes (5 s); these pin the wiring by value
in a few milliseconds, so a mutant is judged without starting processes."""

import torch
import torch.nn.functional as F

from sempos.algos import mocov3 as mocov3_module
from sempos.algos.base import Batch
from sempos.algos.mocov3 import MoCoV3
from sempos.models.resnet import build_backbone

B, DIM = 4, 8
HP = {"proj_hidden": 16, "proj_dim": DIM, "pred_hidden": 16, "temperature": 0.3}


def _views():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(B, 1, 28, 28, generator=g)
    return x, x.flip(-1) * 0.9, torch.arange(B)


def _as_rank_1_of_2(monkeypatch, module, other_keys):
    """dist.rank() is 1 and dist.gather() puts rank 0's rows (other_keys, by shape) before this rank's."""
    monkeypatch.setattr(module.dist, "rank", lambda: 1)
    monkeypatch.setattr(module.dist, "gather", lambda t: torch.cat([other_keys(t), t]))


def _reference_infonce(q, keys, tau, first_positive):
    logits = F.normalize(q, dim=1) @ F.normalize(keys, dim=1).t() / tau
    return F.cross_entropy(logits, torch.arange(len(q)) + first_positive) * 2 * tau


def test_mocov3_queries_score_every_ranks_keys_with_positives_at_this_ranks_offset(monkeypatch):
    torch.manual_seed(0)
    m = MoCoV3(build_backbone("resnet18_cifar", width=4, in_channels=1), HP, 64).eval()
    x1, x2, ids = _views()
    g = torch.Generator().manual_seed(9)
    rank0 = {}

    def other(t):  # rank 0's keys: fixed random rows, one set per view (k1 is gathered first, then k2)
        rank0.setdefault(len(rank0), torch.randn(t.shape, generator=g))
        return rank0[len(rank0) - 1]

    with torch.no_grad():
        _, _, q1, q2 = m.online(x1, x2)
        k1, k2 = m.keys(x1, x2)
        _as_rank_1_of_2(monkeypatch, mocov3_module, other)
        loss = m(x1, x2, Batch(ids, ids, 0, 0, 0.0))["loss"]
    o1, o2 = rank0[0], rank0[1]
    expected = (_reference_infonce(q1, torch.cat([o2, k2]), 0.3, B)
                + _reference_infonce(q2, torch.cat([o1, k1]), 0.3, B))
    assert torch.allclose(loss, expected, atol=1e-5)
    # the positives really are at the offset: at offset 0 the loss scores rank 0's random rows instead
    wrong = _reference_infonce(q1, torch.cat([o2, k2]), 0.3, 0) + _reference_infonce(q2, torch.cat([o1, k1]), 0.3, 0)
    assert not torch.allclose(loss, wrong, atol=1e-3)


def test_mocov3_without_the_2tau_scale_is_plain_infonce(monkeypatch):
    torch.manual_seed(0)
    m = MoCoV3(build_backbone("resnet18_cifar", width=4, in_channels=1), {**HP, "scale_2tau": False}, 64).eval()
    x1, x2, ids = _views()
    with torch.no_grad():
        _, _, q1, q2 = m.online(x1, x2)
        k1, k2 = m.keys(x1, x2)
        loss = m(x1, x2, Batch(ids, ids, 0, 0, 0.0))["loss"]
    expected = (_reference_infonce(q1, k2, 0.3, 0) + _reference_infonce(q2, k1, 0.3, 0)) / (2 * 0.3)
    assert torch.allclose(loss, expected, atol=1e-5)
