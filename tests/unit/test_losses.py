import math

import torch
import torch.nn.functional as F

from sempos.losses import infonce_queue, nt_xent


def nt_xent_reference(z1, z2, tau):
    """Loop over the 2N anchors, straight from the SimCLR paper's definition."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[j]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    return total / (2 * n)


def test_nt_xent_analytic_orthogonal_pairs():
    # Two pairs; each view equals its partner and is orthogonal to the other pair.
    e = torch.eye(2)
    tau = 0.5
    loss = nt_xent(e, e.clone(), tau)
    # Anchor sees: partner sim 1, two others sim 0 -> -log(e^2 / (e^2 + 2)).
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_nt_xent_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    for tau in (0.1, 0.5, 1.0):
        assert math.isclose(nt_xent(z1, z2, tau).item(), nt_xent_reference(z1, z2, tau), rel_tol=1e-5)


def test_nt_xent_is_scale_invariant_and_symmetric():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    assert torch.allclose(nt_xent(z1, z2, 0.2), nt_xent(3 * z1, 0.5 * z2, 0.2))
    assert torch.allclose(nt_xent(z1, z2, 0.2), nt_xent(z2, z1, 0.2))


def infonce_reference(q, k, queue, tau):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    total = 0.0
    for i in range(q.shape[0]):
        pos = math.exp(float(q[i] @ k[i]) / tau)
        neg = sum(math.exp(float(q[i] @ n) / tau) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / q.shape[0]


def test_infonce_analytic_single_negative():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0]])
    tau = 0.2
    expected = -math.log(math.exp(5) / (math.exp(5) + 1))
    assert math.isclose(infonce_queue(q, k, queue, tau).item(), expected, rel_tol=1e-6)


def test_infonce_matches_loop_reference():
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    queue = F.normalize(torch.randn(10, 8, generator=g), dim=1)
    assert math.isclose(infonce_queue(q, k, queue, 0.2).item(), infonce_reference(q, k, queue, 0.2), rel_tol=1e-5)


def infonce_autograd_reference(q, k, queue, tau):
    """InfoNCE from its definition in differentiable torch: -log e^(q.k/t) / (e^(q.k/t) + sum_n e^(q.n/t))."""
    q, k = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    pos = torch.exp((q * k).sum(1) / tau)
    return -torch.log(pos / (pos + torch.exp(q @ queue.t() / tau).sum(1))).mean()


def test_infonce_gradients_equal_the_definitions_and_stop_at_a_detached_key():
    g = torch.Generator().manual_seed(3)
    q0, k0 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    queue0 = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    grads = {}
    for name, fn in (("ours", infonce_queue), ("ref", infonce_autograd_reference)):
        q, k, queue = (t.clone().requires_grad_(True) for t in (q0, k0, queue0))
        fn(q, k, queue, 0.2).backward()
        grads[name] = (q.grad, k.grad, queue.grad)
    for ours, ref in zip(grads["ours"], grads["ref"]):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)
    assert all(gr.abs().sum() > 1e-3 for gr in grads["ours"])  # query, key and queue all get a gradient
    # MoCo computes keys without gradient: a detached key then receives none, the query the same as above.
    q, k = q0.clone().requires_grad_(True), k0.clone().requires_grad_(True)
    infonce_queue(q, k.detach(), queue0, 0.2).backward()
    assert k.grad is None
    torch.testing.assert_close(q.grad, grads["ref"][0], rtol=1e-5, atol=1e-7)


def multi_positive_nt_xent_reference(z1, z2, tau, pos):
    """Loop: view i averages -log[e^(s_ij/t) / sum_{k != i} e^(s_ik/t)] over its positives j != i."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(len(z)):
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(len(z)) if k != i)
        terms = [-math.log(math.exp(float(z[i] @ z[j]) / tau) / den) for j in range(len(z)) if pos[i][j] and j != i]
        total += sum(terms) / max(1, len(terms))
    return total / len(z)


def test_multi_positive_nt_xent_averages_over_several_positives():
    from sempos.losses import multi_positive_nt_xent

    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    pos = torch.roll(torch.eye(6, dtype=torch.bool), 3, dims=1)
    # images 0 and 1 are partners: each of their four views gets two more positives (three in all);
    # the diagonal is set too, and must not count
    for i in (0, 1, 3, 4):
        for j in (0, 1, 3, 4):
            pos[i, j] = True
    got = multi_positive_nt_xent(z1, z2, 0.5, pos).item()
    assert math.isclose(got, multi_positive_nt_xent_reference(z1, z2, 0.5, pos.tolist()), rel_tol=1e-5)
