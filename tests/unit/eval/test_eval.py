import math

import numpy as np
import torch
import torch.nn.functional as F

from sempos.eval.knn import knn_predict, topk_accuracy
from sempos.eval.linear import linear_probe
from sempos.eval.transfer import logistic_transfer, mean_per_class_accuracy


def test_knn_weighted_vote_matches_hand_computation():
    bank = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    q = F.normalize(torch.tensor([[1.0, 0.1]]), dim=1)
    scores = knn_predict(bank, labels, q, num_classes=2, k=2, temperature=0.1)
    sims = (q @ bank.t())[0]
    # the two nearest are bank rows 0 (class 0) and 1 (class 1)
    expected = torch.tensor([[math.exp(sims[0] / 0.1), math.exp(sims[1] / 0.1)]])
    assert torch.allclose(scores, expected, rtol=1e-5)
    assert scores.argmax().item() == 0


def test_knn_blocks_do_not_change_result():
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(50, 8, generator=g), dim=1)
    q = F.normalize(torch.randn(13, 8, generator=g), dim=1)
    y = torch.randint(0, 3, (50,), generator=g)
    assert torch.allclose(knn_predict(bank, y, q, 3, 7, 0.1, block=4), knn_predict(bank, y, q, 3, 7, 0.1, block=100))


def test_topk_accuracy():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    acc = topk_accuracy(scores, torch.tensor([1, 2]), ks=(1, 2))
    assert acc == {"top1": 50.0, "top2": 100.0}


def _planted(n, d=16, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, k, generator=g)
    x = torch.randn(n, d, generator=g)
    return x, (x @ w).argmax(1)


def test_linear_probe_recovers_planted_separation():
    x, y = _planted(2000)
    xt, yt = _planted(500, seed=0)[0][:0], None
    x_test, y_test = x[1500:], y[1500:]
    res = linear_probe(x[:1500], y[:1500], x_test, y_test, 4, epochs=20, lr=0.5)
    assert res["top1"] > 90.0


def test_logistic_transfer_recovers_planted_separation_and_selects_c():
    x, y = _planted(1200, seed=3)
    x, y = x.numpy(), y.numpy()
    res = logistic_transfer(x[:600], y[:600], x[600:900], y[600:900], x[900:], y[900:], [1e-4, 1.0])
    assert res["best_c"] == 1.0
    assert res["top1"] > 90.0


def test_mean_per_class_accuracy():
    y = np.array([0, 0, 0, 1])
    p = np.array([0, 0, 0, 0])
    assert mean_per_class_accuracy(y, p) == 50.0


def _unit(cos):
    return [cos, math.sqrt(1 - cos * cos)]


def test_knn_defaults_are_the_monitor_protocol_k200_t01():
    """The trainer's online monitor calls knn_accuracy with its defaults: k = 200, T = 0.1 (MoCo, solo-learn)."""
    from sempos.eval.knn import knn_accuracy

    q, one = torch.tensor([[1.0, 0.0]]), torch.tensor([1])
    # k: 100 class-0 points at cos 0.5 outvote 100 class-1 points at cos 0.4999 by 100 (e^5 - e^4.999) = 15;
    # a 201st neighbour (class 1, cos 0.4, e^4 = 55) would turn the vote.
    bank = torch.tensor([_unit(0.5)] * 100 + [_unit(0.4999)] * 100 + [_unit(0.4)])
    y = torch.tensor([0] * 100 + [1] * 101)
    assert knn_predict(bank, y, q, 2).argmax().item() == 0 and knn_accuracy(bank, y, q, one, 2)["top1"] == 0.0
    assert knn_predict(bank, y, q, 2, k=201).argmax().item() == 1
    # T: 3 class-0 points at cos 0.6 outvote one class-1 point at cos 1 only at a high temperature.
    bank, y = torch.tensor([_unit(0.6)] * 3 + [_unit(1.0)]), torch.tensor([0, 0, 0, 1])
    assert knn_predict(bank, y, q, 2).argmax().item() == 1 and knn_accuracy(bank, y, q, one, 2)["top1"] == 100.0
    assert knn_accuracy(bank, y, q, one, 2, temperature=1.1)["top1"] == 0.0


def test_knn_scores_keep_the_feature_dtype():
    g = torch.Generator().manual_seed(1)
    bank = F.normalize(torch.randn(20, 4, generator=g, dtype=torch.float64), dim=1)
    scores = knn_predict(bank, torch.randint(0, 3, (20,), generator=g), bank[:5], 3, k=4)
    assert scores.dtype == torch.float64 and scores.shape == (5, 3)
