"""The hook contract between an SSL algorithm and the shared trainer.

An algorithm declares:
  * HPARAMS: its hyper-parameters and defaults (params.yaml's method entry may set exactly these),
  * its modules (backbone + heads) as attributes; the optimiser gets every parameter that requires grad,
  * momentum_pairs(): (online, target) module pairs that the trainer updates by EMA after each step,
  * persistent state (queues, banks, pointers) as registered buffers, so checkpoints carry it,
  * training_step(): the loss (and scalars to log) for one batch of two augmented views.
The trainer owns data, augmentation, optimiser, precision, checkpoint/resume, logging and monitoring.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Batch:
    """What a step sees besides the two views: image ids of each side (a == b for augmented pairs)."""

    idx_a: torch.Tensor
    idx_b: torch.Tensor
    epoch: int
    step: int
    progress: float  # fraction of training done, in [0, 1)


class Algorithm(nn.Module):
    name: ClassVar[str] = ""
    HPARAMS: ClassVar[dict[str, Any]] = {}
    trains: ClassVar[bool] = True

    def __init__(self, backbone: nn.Module, hp: dict, num_train: int) -> None:
        super().__init__()
        unknown = set(hp) - set(self.HPARAMS) - {"algo", "positives"}
        if unknown:
            raise ValueError(f"{self.name}: unknown hyper-parameters {sorted(unknown)}")
        self.hp = {**self.HPARAMS, **{k: v for k, v in hp.items() if k in self.HPARAMS}}
        self.backbone = backbone
        self.num_train = num_train
        # Set by the trainer: labels of every training image (diagnostics such as neighbour purity only),
        # and the SePP partner index with its switches (variant M, masking partners among negatives).
        self.diag_labels: torch.Tensor | None = None
        self.partners = None
        self.multi_positive = False
        self.mask_partners = False

    def same_or_partner(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """[len(a), len(b)] True where the two images are the same image or known SePP partners."""
        same = a.view(-1, 1) == b.view(1, -1)
        return same if self.partners is None else same | self.partners.lookup(a, b)

    # Set by algorithms with parameters that some steps leave unused (DDP must then look for them).
    ddp_find_unused: ClassVar[bool] = False

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # DDP synchronises gradients of what runs inside forward(), so the step goes through here.
        return self.training_step(x1, x2, batch)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return []

    def ema_momentum(self, progress: float) -> float:
        """Constant `ema`, or the BYOL/MoCo-v3 half-cosine from `ema` to 1 when `ema_cosine` is set."""
        base = float(self.hp.get("ema", 0.0))
        if self.hp.get("ema_cosine", False):
            return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2
        return base

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        raise TypeError(f"algorithm '{self.name}' does not train; it has no training step")

    @staticmethod
    def momentum_copy(module: nn.Module) -> nn.Module:
        target = copy.deepcopy(module)
        for p in target.parameters():
            p.requires_grad_(False)
        return target


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], m: float) -> None:
    """target <- m * target + (1 - m) * online, for all pairs at once (foreach kernels)."""
    online, target = [], []
    for o, t in pairs:
        online += list(o.parameters())
        target += list(t.parameters())
    if target:
        torch._foreach_mul_(target, m)
        torch._foreach_add_(target, online, alpha=1 - m)
