"""BYOL (Grill et al. 2020): online predictor regresses the EMA target's projection; no negatives."""

from __future__ import annotations

import torch

from ..losses import byol_loss
from .base import Algorithm, Batch
from .heads import mlp


class BYOL(Algorithm):
    name = "byol"
    HPARAMS = {"proj_hidden": 512, "proj_dim": 128, "pred_hidden": 512, "ema": 0.99, "ema_cosine": True}

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        h = self.hp
        self.projector = mlp(backbone.feat_dim, h["proj_hidden"], h["proj_dim"], layers=2)
        self.predictor = mlp(h["proj_dim"], h["pred_hidden"], h["proj_dim"], layers=2)
        self.backbone_t = self.momentum_copy(self.backbone)
        self.projector_t = self.momentum_copy(self.projector)

    def momentum_pairs(self):
        return [(self.backbone, self.backbone_t), (self.projector, self.projector_t)]

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        p1, p2 = self.predictor(self.projector(self.backbone(torch.cat([x1, x2])))).float().chunk(2)
        with torch.no_grad():
            t1, t2 = self.projector_t(self.backbone_t(torch.cat([x1, x2]))).float().chunk(2)
        return {"loss": byol_loss(p1, t2) + byol_loss(p2, t1)}
