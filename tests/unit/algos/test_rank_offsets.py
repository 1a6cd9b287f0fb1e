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


def test_snclr_gathers_keys_and_neighbours_and_scores_them_at_this_ranks_offset(monkeypatch):
    from sempos.algos import snclr as snclr_module
    from sempos.algos.snclr import SNCLR
    from sempos.losses import snclr_code_loss, snclr_paper_loss

    for form, loss_fn in (("code_sum_of_logs", snclr_code_loss), ("paper_log_of_weighted_sum", snclr_paper_loss)):
        torch.manual_seed(0)
        hp = {**HP, "bank_size": 32, "k": 2, "loss_form": form}
        m = SNCLR(build_backbone("resnet18_cifar", width=4, in_channels=1), hp, 64).eval()
        m.bank.push(torch.randn(32, DIM, generator=torch.Generator().manual_seed(5)))
        x1, x2, ids = _views()
        g = torch.Generator().manual_seed(9)
        gathered = []  # rank 0's rows, in the order training_step gathers: keys, neighbours, per direction

        def other(t):  # (the bank's push after the loss gathers ids and labels too)
            gathered.append(torch.randn(t.shape, generator=g) if t.is_floating_point() else t + 1000)
            return gathered[-1]

        with torch.no_grad():
            y1, y2, z1, z2 = m.online(x1, x2)
            k1, k2 = m.keys(x1, x2)
            ref = []
            for z, y, k_other in ((z1, y1, k2), (z2, y2, k1)):
                _, _, nb = m.bank.topk(k_other, 2)
                ref.append((z, k_other, nb, m._weights(y, nb)))
            _as_rank_1_of_2(monkeypatch, snclr_module, other)
            loss = m(x1, x2, Batch(ids, ids, 0, 0, 0.0))["loss"]
            monkeypatch.undo()
        expected = sum(loss_fn(z, torch.cat([gathered[2 * d], k]), torch.cat([gathered[2 * d + 1], nb]), w, 0.3,
                               hp.get("scale_2tau", True), offset=B)
                       for d, (z, k, nb, w) in enumerate(ref))
        assert torch.allclose(loss, expected, atol=1e-5), form
