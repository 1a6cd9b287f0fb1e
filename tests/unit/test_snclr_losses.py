"""SNCLR, NNCLR, BYOL/SimSiam and MoCo-v3 losses against hand-written references."""

import math

import pytest
import torch
import torch.nn.functional as F

from sempos.losses import (byol_loss, mocov3_loss, nnclr_loss, simsiam_loss, snclr_code_loss, snclr_paper_loss,
                           snclr_weights)


def _data(b=4, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, d, generator=g)
    keys = torch.randn(b, d, generator=g)
    nb = torch.randn(b, k, d, generator=g)
    y = torch.randn(b, d, generator=g)
    return z, keys, nb, y


def _candidates(keys, nb):
    return [keys[m] for m in range(keys.shape[0])] + [nb[m, i] for m in range(nb.shape[0]) for i in range(nb.shape[1])]


def _logp(zn, c, cands, tau):
    cos = lambda a, b: float(F.normalize(a, dim=0) @ F.normalize(b, dim=0))  # noqa: E731
    den = sum(math.exp(cos(zn, x) / tau) for x in cands)
    return math.log(math.exp(cos(zn, c) / tau) / den)


def code_reference(z, keys, nb, w, tau, scale):
    cands = _candidates(keys, nb)
    total = 0.0
    for n in range(z.shape[0]):
        total += -_logp(z[n], keys[n], cands, tau)
        for i in range(nb.shape[1]):
            total += -float(w[n, i]) * _logp(z[n], nb[n, i], cands, tau)
    loss = total / z.shape[0]
    return loss * 2 * tau if scale else loss


def paper_reference(z, keys, nb, w, tau):
    cands = _candidates(keys, nb)
    total = 0.0
    for n in range(z.shape[0]):
        s = math.exp(_logp(z[n], keys[n], cands, tau))
        s += sum(float(w[n, i]) * math.exp(_logp(z[n], nb[n, i], cands, tau)) for i in range(nb.shape[1]))
        total += -math.log(s)
    return total / z.shape[0]


def test_weights_are_a_softmax_over_k_and_sum_to_one():
    _, _, nb, y = _data()
    w = snclr_weights(y, nb)
    assert torch.allclose(w.sum(1), torch.ones(4))
    manual = torch.softmax(torch.einsum("bd,bkd->bk", F.normalize(y, dim=1), F.normalize(nb, dim=2)), 1)
    assert torch.allclose(w, manual)
    wt = snclr_weights(y, nb, threshold=True)
    assert ((wt == 0) | (wt > 1 / 3)).all() and (wt <= w + 1e-7).all()


@pytest.mark.parametrize("scale", [True, False])
def test_code_form_matches_loop_reference(scale):
    z, keys, nb, y = _data()
    w = snclr_weights(y, nb)
    got = snclr_code_loss(z, keys, nb, w, 0.2, scale_2tau=scale).item()
    assert math.isclose(got, code_reference(z, keys, nb, w, 0.2, scale), rel_tol=1e-5)


def test_paper_form_matches_loop_reference():
    z, keys, nb, y = _data(seed=1)
    w = snclr_weights(y, nb)
    got = snclr_paper_loss(z, keys, nb, w, 0.5).item()
    assert math.isclose(got, paper_reference(z, keys, nb, w, 0.5), rel_tol=1e-5)


def test_k_zero_reduces_to_mocov3_infonce():
    z, keys, _, _ = _data()
    empty = keys.new_zeros(4, 0, 5)
    w = keys.new_zeros(4, 0)
    for scale in (True, False):
        ref = mocov3_loss(z, keys, 0.2, scale_2tau=scale)
        assert torch.allclose(snclr_code_loss(z, keys, empty, w, 0.2, scale), ref)
        assert torch.allclose(snclr_paper_loss(z, keys, empty, w, 0.2, scale), ref)


def test_offset_selects_the_local_anchors_among_gathered_keys():
    z, keys, nb, y = _data(b=6)
    w = snclr_weights(y, nb)
    # Loss of anchors 2..3 computed locally with offset 2 equals those anchors' terms in the full loss.
    local = snclr_code_loss(z[2:4], keys, nb, w[2:4], 0.2, offset=2)
    ref = code_reference_rows(z, keys, nb, w, 0.2, rows=[2, 3])
    assert math.isclose(local.item(), ref, rel_tol=1e-5)


def code_reference_rows(z, keys, nb, w, tau, rows):
    cands = _candidates(keys, nb)
    total = 0.0
    for n in rows:
        total += -_logp(z[n], keys[n], cands, tau)
        total += sum(-float(w[n, i]) * _logp(z[n], nb[n, i], cands, tau) for i in range(nb.shape[1]))
    return total / len(rows) * 2 * tau


def test_gradient_flows_through_weights_unless_detached():
    z, keys, nb, y = _data()
    y = y.clone().requires_grad_(True)
    snclr_code_loss(z, keys, nb, snclr_weights(y, nb), 0.2).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    y2 = y.detach().clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    snclr_code_loss(z2, keys, nb, snclr_weights(y2, nb).detach(), 0.2).backward()
    assert y2.grad is None and z2.grad is not None


def test_nnclr_byol_simsiam_analytic_values():
    e = torch.eye(2)
    # identical normalised vectors: BYOL 0, SimSiam -1
    assert byol_loss(e, e).item() == pytest.approx(0.0, abs=1e-6)
    assert simsiam_loss(e, e).item() == pytest.approx(-1.0)
    assert byol_loss(e, -e).item() == pytest.approx(4.0)
    # NNCLR with orthogonal pairs: -log(e^(1/t) / (e^(1/t) + 1))
    t = 0.5
    assert nnclr_loss(e, e, t).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))


def test_byol_and_simsiam_stop_gradient_on_target():
    p = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    (byol_loss(p, z) + simsiam_loss(p, z)).backward()
    assert p.grad is not None and z.grad is None
