"""SimSiam (Chen & He 2021): predictor + stop-gradient, no momentum encoder, no negatives."""

from __future__ import annotations

import torch

from ..losses import simsiam_loss
from .base import Algorithm, Batch
from .heads import mlp


class SimSiam(Algorithm):
    name = "simsiam"
    HPARAMS = {"proj_hidden": 512, "proj_dim": 512, "pred_hidden": 128}

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        h = self.hp
        self.projector = mlp(backbone.feat_dim, h["proj_hidden"], h["proj_dim"], layers=3, last_bn=True)
        self.predictor = mlp(h["proj_dim"], h["pred_hidden"], h["proj_dim"], layers=2)

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        z = self.projector(self.backbone(torch.cat([x1, x2])))
        p1, p2 = self.predictor(z).float().chunk(2)
        z1, z2 = z.float().chunk(2)
        return {"loss": 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1))}
