"""Optimisers: the multi-tensor LARS equals a per-parameter reference; the schedule's shape."""

import math

import pytest
import torch

from sempos.train.optim import LARS, build_optimizer, lr_at


def lars_reference(params, grads, mus, lr, momentum, wd, tc=0.001):
    """LARS as SimCLR/MoCo-v3 write it, one parameter at a time (1-D tensors: no wd, no adaptation)."""
    for p, g, mu in zip(params, grads, mus):
        d = g.clone()
        if p.ndim > 1:
            d = d + wd * p
            pn, dn = p.norm(), d.norm()
            d = d * (tc * pn / dn if pn > 0 and dn > 0 else 1.0)
        mu.mul_(momentum).add_(d)
        p.sub_(lr * mu)


def test_lars_matches_the_per_parameter_reference_over_steps():
    g = torch.Generator().manual_seed(0)
    shapes = [(8, 4, 3, 3), (8,), (8,), (10, 8), (10,), (3, 3)]
    ref = [torch.randn(s, generator=g) for s in shapes]
    ref[-1].zero_()  # a zero weight matrix: ||p|| = 0, so the trust ratio falls back to 1
    ours = [torch.nn.Parameter(p.clone()) for p in ref]
    mus = [torch.zeros_like(p) for p in ref]
    opt = LARS(ours, lr=0.3, momentum=0.9, weight_decay=1e-4)
    for _ in range(5):
        grads = [torch.randn(s, generator=g) for s in shapes]
        for p, gr in zip(ours, grads):
            p.grad = gr.clone()
        opt.step()
        lars_reference(ref, grads, mus, 0.3, 0.9, 1e-4)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.detach(), b, rtol=1e-6, atol=1e-6)


def test_lars_skips_parameters_without_gradients():
    a, b = torch.nn.Parameter(torch.ones(3, 3)), torch.nn.Parameter(torch.ones(3))
    a.grad = torch.ones(3, 3)
    LARS([a, b], lr=0.1).step()
    assert torch.equal(b.detach(), torch.ones(3)) and not torch.equal(a.detach(), torch.ones(3, 3))


@pytest.mark.parametrize("kind, cls", [("sgd", torch.optim.SGD), ("lars", LARS), ("adamw", torch.optim.AdamW)])
def test_each_optimiser_gets_the_scaled_lr_and_its_settings_over_the_trainable_parameters(kind, cls):
    w, frozen = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3), requires_grad=False)
    opt = build_optimizer([w, frozen], {"optimizer": kind, "lr": 0.1, "batch_size": 512, "momentum": 0.8,
                                        "weight_decay": 0.05})
    assert type(opt) is cls
    (group,) = opt.param_groups
    assert group["params"] == [w]  # frozen parameters are left out
    assert group["lr"] == pytest.approx(0.2) and group["weight_decay"] == 0.05  # lr scaled by batch_size / 256
    if kind != "adamw":
        assert group["momentum"] == 0.8
    if kind != "lars":  # CPU parameters: multi-tensor steps (fused kernels need CUDA)
        assert opt.defaults["foreach"] is True and not opt.defaults.get("fused")


def test_schedule_warms_up_then_follows_a_half_cosine():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0)
    assert lr_at(10, 100, 10, 1.0) == pytest.approx(1.0)  # the first step after warm-up: the cosine's top
    assert lr_at(150, 100, 10, 1.0) == pytest.approx(0.0)  # past the end: stays at 0
    assert lr_at(11, 10, 10, 1.0) == pytest.approx(0.0)  # no cosine steps left: the decay is already over


def test_lars_defaults_and_the_trust_ratio_guards():
    w = torch.nn.Parameter(torch.full((2, 2), 0.1))  # ||w|| = 0.2: adapted (any ||w|| > 0 is)
    zero_grad = torch.nn.Parameter(torch.ones(2, 2))  # a zero update: ||d|| = 0, the ratio falls back to 1
    no_grad = torch.nn.Parameter(torch.ones(3, 3))  # no gradient: skipped, and the ones after it still step
    opt = LARS([no_grad, w, zero_grad], lr=1.0)
    assert {k: opt.defaults[k] for k in ("momentum", "weight_decay", "trust_coefficient")} == \
        {"momentum": 0.9, "weight_decay": 0.0, "trust_coefficient": 0.001}
    w.grad, zero_grad.grad = torch.full((2, 2), 2.0), torch.zeros(2, 2)
    opt.step()
    # trust ratio 0.001 * ||w|| / ||g|| = 0.001 * 0.2 / 4: w - lr * ratio * g
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 0.1 - 0.001 * 0.2 / 4 * 2.0))
    assert torch.equal(zero_grad.detach(), torch.ones(2, 2)) and torch.equal(no_grad.detach(), torch.ones(3, 3))


def test_lars_adapts_an_update_smaller_than_one():
    """The trust ratio applies for any ||d|| > 0, also below 1: w - lr * 0.001 * ||w|| / ||g|| * g."""
    w = torch.nn.Parameter(torch.full((2, 2), 0.1))  # ||w|| = 0.2
    w.grad = torch.full((2, 2), 0.05)  # ||g|| = 0.1
    LARS([w], lr=1.0).step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 0.1 - 0.001 * 0.2 / 0.1 * 0.05))


def test_lars_steps_a_group_after_one_without_gradients():
    idle, w = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(3))
    w.grad = torch.full((3,), 2.0)
    LARS([{"params": [idle]}, {"params": [w], "lr": 0.5}], lr=1.0).step()
    # w is 1-D: no adaptation, the first step's momentum buffer is the gradient itself
    assert torch.equal(w.detach(), torch.full((3,), 1.0 - 0.5 * 2.0)) and torch.equal(idle.detach(), torch.ones(2, 2))
