"""The hook contract between an SSL algorithm and the shared trainer.

An algorithm declares:
  * HPARAMS: its hyper-parameters and defaults (params.yaml's method entry may set exactly these),
  * SWITCHES: the SePP partner switches it implements (multi_positive: variant M, mask_partners);
    the constructor and the config check both refuse any other,
  * its modules (backbone + heads) as attributes; the optimiser gets every parameter that requires grad,
  * momentum_pairs(): (online, target) module pairs that the trainer updates by EMA after each step,
  * persistent state (queues, banks, pointers) as registered buffers, so checkpoints carry it,
  * training_step(): the loss (and scalars to log) for one batch of two augmented views.
The trainer owns data, augmentation, optimiser, precision, checkpoint/resume, logging and monitoring.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping

import torch
from torch import nn

# The SePP partner switches and what asks for them live in sempos.config (params are checked without
# importing algorithms); re-exported here for the trainer and the algorithms.
from ..config import SWITCH_KEYS, partner_switches  # noqa: F401
from ..errors import ConfigError

log = logging.getLogger(__name__)


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
    SWITCHES: ClassVar[frozenset[str]] = frozenset()
    trains: ClassVar[bool] = True

    def __init__(self, backbone: nn.Module, hp: dict, num_train: int, partners=None,
                 multi_positive: bool = False, mask_partners: bool = False) -> None:
        """`partners` (positives.partners.PartnerIndex) is the SePP pair index the switches read:
        multi_positive (variant M) makes in-batch partners extra positives, mask_partners removes them
        (and older views of the same image) from the negatives."""
        super().__init__()
        unknown = set(hp) - set(self.HPARAMS) - {"algo", "positives"}
        if unknown:
            raise ConfigError(f"{self.name}: unknown hyper-parameters {sorted(unknown)}; "
                              f"it takes {sorted(self.HPARAMS)}")
        switches = {"multi_positive": bool(multi_positive), "mask_partners": bool(mask_partners)}
        self.check_switches(switches)
        if any(switches.values()) and partners is None:
            raise ConfigError(f"{self.name}: the partner switches {sorted(k for k, v in switches.items() if v)} "
                              f"need a partner index: positives.source mined, oracle or random")
        self.hp = {**self.HPARAMS, **{k: v for k, v in hp.items() if k in self.HPARAMS}}
        self.backbone = backbone
        self.num_train = num_train
        self.partners = partners
        self.multi_positive = switches["multi_positive"]
        self.mask_partners = switches["mask_partners"]
        # Set by the trainer: labels of every training image (diagnostics such as neighbour purity only).
        self.diag_labels: torch.Tensor | None = None

    def warn_if_store_holds_anchors(self, key: str, keys_per_image: float, effect: str) -> None:
        """A queue or bank as long as the keys one epoch pushes holds each anchor's own key from the epoch before
        (small proxies and subsets run into this; MoCo's 65,536 keys are 5 % of an ImageNet epoch's)."""
        per_epoch = int(self.num_train * keys_per_image)
        if self.num_train and self.hp[key] >= per_epoch:
            log.warning("%s: %s=%d holds every key an epoch pushes (%d, from %d training images), so each anchor's "
                        "own earlier key is in it: %s. Take %s below %d.", self.name, key, self.hp[key], per_epoch,
                        self.num_train, effect, key, per_epoch)

    @classmethod
    def check_switches(cls, switches: Mapping[str, bool], where: str = "",
                       others: Iterable[type["Algorithm"]] = ()) -> None:
        """ConfigError unless every partner switch that is on is one this algorithm implements.

        The message names which of `others` (the registry's algorithms) implement the refused switches.
        """
        unknown = sorted(set(switches) - set(SWITCH_KEYS))
        if unknown:
            raise ConfigError(f"{where}{cls.name}: unknown partner switches {unknown}; known: {sorted(SWITCH_KEYS)}")
        refused = [s for s, on in switches.items() if on and s not in cls.SWITCHES]
        if refused:
            asked = " and ".join(f"positives.{SWITCH_KEYS[s]}" for s in refused)
            able = sorted(o.name for o in others if set(refused) <= o.SWITCHES)
            hint = f" (implemented by: {', '.join(able)})" if able else ""
            raise ConfigError(f"{where}algo '{cls.name}' does not implement {asked}; drop it or choose an algo "
                              f"that does{hint}")

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


def ema_update(pairs: list[tuple[nn.Module, nn.Module]], m: float) -> None:
    """target <- m * target + (1 - m) * online, for all pairs at once (foreach kernels)."""
    with torch.no_grad():
        online, target = [], []
        for o, t in pairs:
            online += list(o.parameters())
            target += list(t.parameters())
        if target:
            torch._foreach_mul_(target, m)
            torch._foreach_add_(target, online, alpha=1 - m)
