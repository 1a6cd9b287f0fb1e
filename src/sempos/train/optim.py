"""Optimisers (SGD, LARS, AdamW) and the per-step warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch

from ..errors import InvalidValueError


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as in SimCLR/MoCo-v3: 1-D parameters (BN, biases) skip wd and adaptation."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient))

    def step(self, closure=None):
        with torch.no_grad():
            # One multi-tensor (foreach) kernel per operation over all parameters, not one small kernel per
            # parameter and operation: on a GPU the per-parameter loop is launch-bound for ResNet-50's 161 tensors.
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if not params:
                    continue
                d = [p.grad for p in params]  # BN weights and biases (1-D) step on their raw gradient
                adapt = [i for i, p in enumerate(params) if p.ndim > 1]
                if adapt:
                    pa = [params[i] for i in adapt]
                    # Out of place: the gradients themselves are left as backward wrote them.
                    da = torch._foreach_add([d[i] for i in adapt], pa, alpha=group["weight_decay"])
                    p_norm, d_norm = torch.stack(torch._foreach_norm(pa)), torch.stack(torch._foreach_norm(da))
                    q = torch.where((p_norm > 0) & (d_norm > 0), group["trust_coefficient"] * p_norm / d_norm,
                                    torch.ones_like(p_norm))
                    torch._foreach_mul_(da, list(q.unbind()))
                    for i, t in zip(adapt, da):
                        d[i] = t
                mu = []
                for p in params:
                    state = self.state[p]
                    if "mu" not in state:
                        state["mu"] = torch.zeros_like(p)
                    mu.append(state["mu"])
                torch._foreach_mul_(mu, group["momentum"])
                torch._foreach_add_(mu, d)
                torch._foreach_add_(params, mu, alpha=-group["lr"])


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: Mapping) -> torch.optim.Optimizer:
    lr = cfg["lr"] * cfg["batch_size"] / 256
    params = [p for p in params if p.requires_grad]
    kind = cfg["optimizer"]
    # Fused kernels when every parameter is on CUDA; multi-tensor (foreach) steps elsewhere.
    fast = {"fused": True} if params and all(p.is_cuda for p in params) else {"foreach": True}
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"], **fast)
    if kind == "lars":
        return LARS(params, lr=lr, momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg["weight_decay"], **fast)
    raise InvalidValueError(f"pretrain.optimizer '{kind}' is unknown; choose sgd, lars or adamw")


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to base_lr, then half-cosine to 0, evaluated per iteration."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
