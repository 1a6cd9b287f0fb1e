"""NNCLR (Dwibedi et al. 2021): a view's nearest neighbour in a support set is the other view's positive."""

from __future__ import annotations

import torch

from .. import dist
from ..errors import ConfigError
from ..losses import nnclr_loss
from ..memory_bank import MemoryBank
from .base import Algorithm, Batch
from .heads import mlp


class NNCLR(Algorithm):
    name = "nnclr"
    HPARAMS = {"temperature": 0.1, "proj_hidden": 512, "proj_dim": 128, "pred_hidden": 512,
               "bank_size": 4096, "k": 1}

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        h = self.hp
        self.projector = mlp(backbone.feat_dim, h["proj_hidden"], h["proj_dim"], layers=3, last_bn=True)
        self.predictor = mlp(h["proj_dim"], h["pred_hidden"], h["proj_dim"], layers=2)
        if not 1 <= h["k"] <= h["bank_size"]:
            raise ConfigError(f"nnclr k={h['k']} must lie in [1, bank_size={h['bank_size']}]")
        self.bank = MemoryBank(h["bank_size"], h["proj_dim"])
        self.warn_if_store_holds_anchors("bank_size", 1, "its nearest neighbour is mostly itself (see self_hit)")

    def _neighbour(self, z: torch.Tensor):
        _, idx, vecs = self.bank.topk(z, self.hp["k"])
        # K > 1: a uniformly random one of the K nearest (the "NNCLR K=5" variant of the small-scale table).
        pick = torch.randint(self.hp["k"], (z.shape[0],), device=z.device) if self.hp["k"] > 1 else \
            torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        rows = torch.arange(z.shape[0], device=z.device)
        return vecs[rows, pick], idx

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        z = self.projector(self.backbone(torch.cat([x1, x2])))
        p1, p2 = self.predictor(z).float().chunk(2)
        z1, z2 = z.float().chunk(2)
        nn1, idx1 = self._neighbour(z1)
        nn2, _ = self._neighbour(z2)
        p1g, p2g = dist.gather_with_grad(p1), dist.gather_with_grad(p2)
        nn1g, nn2g = dist.gather(nn1), dist.gather(nn2)
        tau = self.hp["temperature"]
        loss = 0.5 * (nnclr_loss(nn1g, p2g, tau) + nnclr_loss(nn2g, p1g, tau))
        out = {"loss": loss, "self_hit": self.bank.self_hit_rate(batch.idx_a, idx1)}
        if self.diag_labels is not None:
            out["purity"] = self.bank.purity(self.diag_labels[batch.idx_a], idx1)
        labels = self.diag_labels[batch.idx_a] if self.diag_labels is not None else None
        self.bank.push(z1, batch.idx_a, labels)
        return out
