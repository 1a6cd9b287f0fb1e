"""SNCLR (Ge et al., ICLR 2023): soft neighbours from a momentum bank as weighted positives.

Built on MoCo-v3. For each view, the momentum key k2 retrieves its K nearest bank entries NN(k2); the
online projection y1 scores them by cross-attention (softmax of cosines, no temperature) into
positiveness weights w; the online prediction z1 is trained against the own key (target 1) and the
neighbours (targets w) over the candidate set of every key and neighbour in the batch. Symmetric:
L(z1; k2) + L(z2; k1). Defaults follow the official code; docs/science.md §2.4's switches are hyper-parameters:
loss_form, attn_proj (identity | learnable f1/f2) with attn_gamma, threshold, detach_w, scale_2tau,
bank_scope.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import dist
from ..errors import ConfigError
from ..losses import snclr_code_loss, snclr_paper_loss, snclr_weights
from ..memory_bank import MemoryBank
from .base import Batch
from .mocov3 import MoCoV3


class LearnableAttention(nn.Module):
    """The paper's projections: softmax_i[f1(y) . f2(NN_i)], each f a linear layer and a non-linearity."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.f1 = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.f2 = nn.Sequential(nn.Linear(dim, dim), nn.GELU())

    def forward(self, y: torch.Tensor, neighbours: torch.Tensor, threshold: bool) -> torch.Tensor:
        return snclr_weights(self.f1(y), self.f2(neighbours), threshold=threshold)


class SNCLR(MoCoV3):
    name = "snclr"
    # attn_gamma is the paper's 1/gamma scale of w, a fixed constant: were it learnt, both loss forms are
    # monotone in w (the code form falls as w -> 0, the paper form as w -> inf), so it would run off.
    HPARAMS = {**MoCoV3.HPARAMS, "k": 5, "bank_size": 4096, "loss_form": "code_sum_of_logs",
               "attn_proj": "identity", "attn_gamma": 1.0, "threshold": False, "detach_w": False,
               "bank_scope": "global"}
    CHOICES = {"loss_form": ("code_sum_of_logs", "paper_log_of_weighted_sum"),
               "attn_proj": ("identity", "learnable"), "bank_scope": ("global", "per_gpu")}

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        h = self.hp
        for key, allowed in self.CHOICES.items():
            if h[key] not in allowed:
                raise ConfigError(f"snclr {key} must be one of {allowed}, not {h[key]!r}")
        if h["k"] < 0 or h["k"] > h["bank_size"]:
            raise ConfigError(f"snclr k={h['k']} must lie in [0, bank_size={h['bank_size']}]")
        self.bank = MemoryBank(h["bank_size"], h["proj_dim"], scope=h["bank_scope"])
        if h["k"]:  # a per-GPU bank gets only its own process's keys
            self.warn_if_store_holds_anchors("bank_size", 1 / dist.world_size() if h["bank_scope"] == "per_gpu" else 1,
                                             "it is among its own soft neighbours (see self_hit)")
        # With K = 0 there is nothing to weigh; unused parameters would also stall DDP's gradient reducer.
        self.attn = LearnableAttention(h["proj_dim"]) if h["attn_proj"] == "learnable" and h["k"] else None

    def _weights(self, y: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        if self.attn is not None:
            w = self.attn(y, neighbours, self.hp["threshold"])
        else:
            w = snclr_weights(y, neighbours, threshold=self.hp["threshold"])
        w = w / self.hp["attn_gamma"]
        return w.detach() if self.hp["detach_w"] else w

    def _direction(self, z, y, k_other):
        """L(z; k_other): neighbours of the other view's keys, weighted by this view's projection."""
        kk = self.hp["k"]
        if kk:
            _, idx, nb = self.bank.topk(k_other, kk)
            w = self._weights(y, nb)
        else:
            idx, nb = None, k_other.new_zeros(k_other.shape[0], 0, k_other.shape[1])
            w = nb.new_zeros(nb.shape[0], 0)
        # The candidate set spans every process's keys and neighbours; the loss is for local anchors.
        keys_all, nb_all = dist.gather(k_other), dist.gather(nb)
        loss_fn = snclr_code_loss if self.hp["loss_form"] == "code_sum_of_logs" else snclr_paper_loss
        loss = loss_fn(z, keys_all, nb_all, w, self.hp["temperature"], self.hp["scale_2tau"],
                       offset=dist.rank() * z.shape[0])
        return loss, w, idx

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        y1, y2, z1, z2 = self.online(x1, x2)
        k1, k2 = self.keys(x1, x2)
        l1, w1, idx = self._direction(z1, y1, k2)
        l2, _, _ = self._direction(z2, y2, k1)
        out = {"loss": l1 + l2}
        if self.hp["k"]:
            out["w_max"] = w1.detach().max(1).values.mean()
            out["self_hit"] = self.bank.self_hit_rate(batch.idx_b, idx)
            if self.diag_labels is not None:
                out["purity"] = self.bank.purity(self.diag_labels[batch.idx_b], idx)
        labels = self.diag_labels[batch.idx_b] if self.diag_labels is not None else None
        self.bank.push(k2, batch.idx_b, labels)
        return out
