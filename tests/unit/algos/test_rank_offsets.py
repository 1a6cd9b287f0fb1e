"""Rank 1 of 2, simulated in one process: the gathered keys put this rank's positives at offset B + i.

tests/unit/test_ddp_bank.py checks the same under two real gloo processes (5 s); these pin the wiring by value
in a few milliseconds, so a mutant is judged without starting processes."""

import pytest
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


def _shuffled_keys_by_hand(m, x, other_x, other_k, r, epoch, step):
    """MoCo's shuffle-BN on rank r of 2, written out: the gathered batch (in rank order) is permuted by a
    generator seeded with epoch * 1_000_003 + step; rank r encodes positions rn..rn+n-1 of the permutation;
    the gathered keys (rank order) are in permuted order, so image i of rank r (global row rn + i) takes
    the key at the position where the permutation holds rn + i."""
    n = x.shape[0]
    in_rank_order = (lambda mine, other: torch.cat([other, mine] if r else [mine, other]))
    xs = in_rank_order(x, other_x)
    perm = torch.randperm(2 * n, generator=torch.Generator().manual_seed(epoch * 1_000_003 + step))
    mine = F.normalize(m.projector_k(m.backbone_k(xs[perm[r * n:(r + 1) * n]])), dim=1)
    keys = in_rank_order(mine, other_k)
    return keys[[int((perm == r * n + i).nonzero()) for i in range(n)]]


@pytest.mark.parametrize("r", [0, 1])
@pytest.mark.parametrize("symmetric", [True, False])
def test_mocov2_keys_are_shuffled_across_ranks_by_the_steps_permutation_and_enqueued_globally(monkeypatch,
                                                                                              symmetric, r):
    from sempos.algos import mocov2 as mocov2_module
    from sempos.algos.mocov2 import MoCoV2
    from sempos.losses import infonce_queue

    n = 8  # 16 images over the two ranks: a wrong permutation would move some keys
    torch.manual_seed(0)
    hp = {"proj_hidden": 16, "proj_dim": DIM, "queue_size": 64, "temperature": 0.3, "symmetric": symmetric}
    m = MoCoV2(build_backbone("resnet18_cifar", width=2, in_channels=1), hp, 64).eval()
    g = torch.Generator().manual_seed(3)
    x1 = torch.rand(n, 1, 16, 16, generator=g)
    x2 = x1.flip(-1) * 0.9
    a, b = torch.arange(n), torch.arange(n) + 20
    queue0 = m.queue.keys.clone()
    gathered = []  # the other rank's rows in gather order: images, keys (per view), the queue's keys and ids

    def other(t):
        gathered.append(torch.randn(t.shape, generator=g) if t.is_floating_point() else t + 1000)
        return gathered[-1]

    with torch.no_grad():
        q1, q2 = (m.projector(m.backbone(x)) for x in (x1, x2))
        monkeypatch.setattr(mocov2_module.dist, "world_size", lambda: 2)
        monkeypatch.setattr(mocov2_module.dist, "rank", lambda: r)
        monkeypatch.setattr(mocov2_module.dist, "gather",
                            lambda t: torch.cat([other(t), t] if r else [t, other(t)]))
        loss = m(x1, x2, Batch(a, b, 2, 3, 0.0))["loss"]
        monkeypatch.undo()
        if symmetric:
            (ox1, ok1, ox2, ok2, okeys, oids) = gathered
            k1 = _shuffled_keys_by_hand(m, x1, ox1, ok1, r, 2, 3)
            k2 = _shuffled_keys_by_hand(m, x2, ox2, ok2, r, 2, 3)
            expected = 0.5 * (infonce_queue(q1, k2, queue0, 0.3) + infonce_queue(q2, k1, queue0, 0.3))
            mine, my_ids = torch.cat([k1, k2]), torch.cat([a, b])
        else:
            (ox2, ok2, okeys, oids) = gathered
            k2 = _shuffled_keys_by_hand(m, x2, ox2, ok2, r, 2, 3)
            expected = infonce_queue(q1, k2, queue0, 0.3)
            mine, my_ids = k2, b
        own = F.normalize(m.projector_k(m.backbone_k(x2)), dim=1)
    # some of this rank's keys were computed here, the others on the other rank (its random stand-ins)
    from_here = torch.isclose(k2, own, atol=1e-6).all(1)
    assert 0 < int(from_here.sum()) < n
    assert torch.allclose(loss, expected, atol=1e-6)
    # the queue takes every rank's keys and ids, in rank order
    pushed = torch.cat([okeys, mine] if r else [mine, okeys])
    ids = torch.cat([oids, my_ids] if r else [my_ids, oids])
    assert okeys.shape == mine.shape and torch.allclose(m.queue.keys[:len(ids)], pushed, atol=1e-6)
    assert torch.equal(m.queue.ids[:len(ids)], ids) and int(m.queue.ptr) == len(ids)
