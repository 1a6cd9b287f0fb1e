"""BYOL, SimSiam, NNCLR, MoCo-v3 and SNCLR losses against analytic values and hand-written loops."""

import math

import pytest
import torch
import torch.nn.functional as F

from sempos.losses import (byol_loss, mocov3_loss, nnclr_loss, simsiam_loss, snclr_code_loss, snclr_paper_loss,
                           snclr_weights)

TAU = 0.2


def _data(b=4, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, keys, y = (torch.randn(b, d, generator=g) for _ in range(3))
    nb = torch.randn(b, k, d, generator=g)
    return z, keys, nb, y


def _cos(a, b):
    return float(F.normalize(a, dim=0) @ F.normalize(b, dim=0))


def _logp(anchor, target, candidates, tau):
    """log softmax over `candidates` of cos(anchor, .) / tau, read at `target`."""
    den = sum(math.exp(_cos(anchor, c) / tau) for c in candidates)
    return _cos(anchor, target) / tau - math.log(den)


def _candidates(keys, nb):
    """docs/science.md §2.3 step 6: every sample's key and its K neighbours (order is irrelevant to a softmax)."""
    return [keys[m] for m in range(len(keys))] + [nb[m, i] for m in range(len(keys)) for i in range(nb.shape[1])]


def code_loop(z, keys, nb, w, tau, scale, rows=None, offset=0):
    """L = 2t * mean_n [-log p_n(k_n) - sum_i w_ni log p_n(NN(k_n)_i)]  (docs/science.md §2.4, code form)."""
    cands = _candidates(keys, nb)
    rows = range(len(z)) if rows is None else rows
    total = 0.0
    for n in rows:
        own = n + offset
        total -= _logp(z[n], keys[own], cands, tau)
        total -= sum(float(w[n, i]) * _logp(z[n], nb[own, i], cands, tau) for i in range(nb.shape[1]))
    loss = total / len(rows)
    return loss * 2 * tau if scale else loss


def paper_loop(z, keys, nb, w, tau):
    """L = -mean_n log[(e(k_n) + sum_i w_ni e(NN_i)) / sum_C e(c)], e(c) = exp(cos(z_n, c)/t) (paper form)."""
    cands = _candidates(keys, nb)
    total = 0.0
    for n in range(len(z)):
        num = math.exp(_cos(z[n], keys[n]) / tau)
        num += sum(float(w[n, i]) * math.exp(_cos(z[n], nb[n, i]) / tau) for i in range(nb.shape[1]))
        total -= math.log(num / sum(math.exp(_cos(z[n], c) / tau) for c in cands))
    return total / len(z)


def infonce_loop(q, k, tau):
    total = sum(-_logp(q[n], k[n], list(k), tau) for n in range(len(q)))
    return total / len(q)


# --- positiveness weights -------------------------------------------------------------------------

def test_weights_are_an_untempered_softmax_of_cosines_summing_to_one():
    _, _, nb, y = _data(k=4)
    w = snclr_weights(y, nb)
    assert torch.allclose(w.sum(1), torch.ones(len(y)))
    for n in range(len(y)):
        scores = torch.tensor([_cos(y[n], nb[n, i]) for i in range(4)])
        assert torch.allclose(w[n], torch.softmax(scores, 0), atol=1e-6)


def test_threshold_zeroes_weights_at_or_below_uniform_and_keeps_the_rest():
    _, _, nb, y = _data(b=8, k=4, seed=3)
    w, wt = snclr_weights(y, nb), snclr_weights(y, nb, threshold=True)
    keep = w > 1 / 4
    assert keep.any() and (~keep).any()
    assert torch.equal(wt[keep], w[keep]) and (wt[~keep] == 0).all()


def test_snclr_threshold_zeroes_a_weight_of_exactly_one_over_k():
    """`<= 1/K` is dropped: K equal neighbours each get exactly 1/4, so all four go."""
    y = torch.tensor([[1.0, 2.0, 0.5]])
    nb = torch.tensor([[0.3, -1.0, 2.0]]).expand(1, 4, 3)
    assert torch.equal(snclr_weights(y, nb), torch.full((1, 4), 0.25))
    assert torch.equal(snclr_weights(y, nb, threshold=True), torch.zeros(1, 4))


# --- SNCLR code and paper forms -------------------------------------------------------------------

@pytest.mark.parametrize("scale", [True, False])
def test_code_form_equals_loop_reference(scale):
    z, keys, nb, y = _data()
    w = snclr_weights(y, nb)
    got = snclr_code_loss(z, keys, nb, w, TAU, scale_2tau=scale).item()
    assert got == pytest.approx(code_loop(z, keys, nb, w, TAU, scale), rel=1e-5)


@pytest.mark.parametrize("scale", [True, False])
def test_paper_form_equals_loop_reference(scale):
    z, keys, nb, y = _data(seed=1)
    w = snclr_weights(y, nb)
    got = snclr_paper_loss(z, keys, nb, w, 0.5, scale_2tau=scale).item()
    ref = paper_loop(z, keys, nb, w, 0.5)
    assert got == pytest.approx(ref * (2 * 0.5 if scale else 1.0), rel=1e-5)


def test_code_form_with_gathered_keys_scores_only_the_local_anchors():
    # A process holding anchors 2..3 of a global batch of 6 sees all 6 keys and neighbours.
    z, keys, nb, y = _data(b=6)
    w = snclr_weights(y, nb)
    got = snclr_code_loss(z[2:4], keys, nb, w[2:4], TAU, offset=2).item()
    ref = code_loop(z[2:4], keys, nb, w[2:4], TAU, True, offset=2)
    assert got == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("loss_fn", [snclr_code_loss, snclr_paper_loss])
@pytest.mark.parametrize("scale", [True, False])
def test_no_neighbours_reduces_to_mocov3_infonce(loss_fn, scale):
    z, keys, _, _ = _data()
    got = loss_fn(z, keys, keys.new_zeros(4, 0, 5), keys.new_zeros(4, 0), TAU, scale)
    ref = mocov3_loss(z, keys, TAU, scale_2tau=scale)
    assert torch.allclose(got, ref, atol=1e-6)
    assert ref.item() == pytest.approx(infonce_loop(z, keys, TAU) * (2 * TAU if scale else 1), rel=1e-5)


def test_paper_form_with_zero_weights_is_infonce_over_the_enlarged_candidate_set():
    # Neighbours then only add negatives: -log p_n(k_n) with p over keys and neighbours.
    z, keys, nb, _ = _data(seed=2)
    got = snclr_paper_loss(z, keys, nb, torch.zeros(4, 3), TAU).item()
    cands = _candidates(keys, nb)
    ref = sum(-_logp(z[n], keys[n], cands, TAU) for n in range(4)) / 4
    assert got == pytest.approx(ref, rel=1e-5)


def test_gradient_reaches_the_projection_through_w_unless_detached():
    z, keys, nb, y = _data()
    y = y.clone().requires_grad_(True)
    snclr_code_loss(z, keys, nb, snclr_weights(y, nb), TAU).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    y.grad = None
    z = z.clone().requires_grad_(True)
    snclr_code_loss(z, keys, nb, snclr_weights(y, nb).detach(), TAU).backward()
    assert y.grad is None and z.grad is not None


# --- BYOL, SimSiam, NNCLR -------------------------------------------------------------------------

def test_byol_is_two_minus_two_cosine_and_stops_gradient_on_the_target():
    p = torch.randn(5, 6, requires_grad=True)
    t = torch.randn(5, 6, requires_grad=True)
    loss = byol_loss(p, t)
    ref = sum(2 - 2 * _cos(p[n].detach(), t[n].detach()) for n in range(5)) / 5
    assert loss.item() == pytest.approx(ref, rel=1e-6)
    loss.backward()
    assert p.grad is not None and t.grad is None
    e = torch.eye(3)
    assert byol_loss(e, e).item() == pytest.approx(0.0, abs=1e-6) and byol_loss(e, -e).item() == pytest.approx(4.0)


def test_simsiam_is_negative_cosine_with_stop_gradient():
    g = torch.Generator().manual_seed(3)  # unseeded, the mean cosine could land near 0, where rel=1e-6 is rounding
    p = torch.randn(5, 6, generator=g).requires_grad_()
    z = torch.randn(5, 6, generator=g).requires_grad_()
    loss = simsiam_loss(p, z)
    assert loss.item() == pytest.approx(-sum(_cos(p[n].detach(), z[n].detach()) for n in range(5)) / 5,
                                        rel=1e-6, abs=1e-7)
    loss.backward()
    assert p.grad is not None and z.grad is None


def test_nnclr_is_infonce_of_each_neighbour_against_the_other_views_predictions():
    g = torch.Generator().manual_seed(4)
    nn_z, p = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    tau = 0.1
    ref = sum(-_logp(nn_z[i], p[i], list(p), tau) for i in range(6)) / 6
    assert nnclr_loss(nn_z, p, tau).item() == pytest.approx(ref, rel=1e-5)
    # Orthogonal unit pairs: -log(e^(1/t) / (e^(1/t) + (B-1) e^0)).
    e = torch.eye(2)
    assert nnclr_loss(e, e, 0.5).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)))


def test_mocov3_loss_scales_by_two_tau_by_default():
    """MoCo-v3's reference code multiplies the InfoNCE by 2 * tau unless told otherwise."""
    z, keys, _, _ = _data(seed=3)
    ref = infonce_loop(z, keys, TAU)  # TAU = 0.2: the factor 2 * tau = 0.4 is visible
    assert mocov3_loss(z, keys, TAU).item() == pytest.approx(ref * 2 * TAU, rel=1e-5)
    assert mocov3_loss(z, keys, TAU, scale_2tau=False).item() == pytest.approx(ref, rel=1e-5)
