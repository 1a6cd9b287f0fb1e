"""MoCo-v3 (Chen, Xie & He 2021): projector + predictor, EMA key encoder, batch keys, no queue."""

from __future__ import annotations

import torch

from .. import dist
from ..losses import mocov3_loss
from .base import Algorithm, Batch
from .heads import mlp


class MoCoV3(Algorithm):
    name = "mocov3"
    # Heads follow moco-v3's ViT path, which SNCLR's code runs: a 3-layer projector and a predictor ending
    # in BN(affine=False). moco-v3's ResNet recipe drops that last BN: pred_last_bn False.
    HPARAMS = {"temperature": 0.2, "proj_hidden": 512, "proj_dim": 128, "pred_hidden": 512,
               "ema": 0.99, "ema_cosine": True, "scale_2tau": True, "pred_last_bn": True}

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        h = self.hp
        self.projector = mlp(backbone.feat_dim, h["proj_hidden"], h["proj_dim"], layers=3, last_bn=True)
        self.predictor = mlp(h["proj_dim"], h["pred_hidden"], h["proj_dim"], layers=2, last_bn=h["pred_last_bn"])
        self.backbone_k = self.momentum_copy(self.backbone)
        self.projector_k = self.momentum_copy(self.projector)

    def momentum_pairs(self):
        return [(self.backbone, self.backbone_k), (self.projector, self.projector_k)]

    def online(self, x1, x2):
        """(projections y1, y2; predictions q1, q2) of the online branch, float32."""
        y = self.projector(self.backbone(torch.cat([x1, x2])))
        q = self.predictor(y)
        y1, y2 = y.float().chunk(2)
        q1, q2 = q.float().chunk(2)
        return y1, y2, q1, q2

    def keys(self, x1, x2):
        with torch.no_grad():
            k1, k2 = self.projector_k(self.backbone_k(torch.cat([x1, x2]))).float().chunk(2)
            return k1, k2

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        _, _, q1, q2 = self.online(x1, x2)
        k1, k2 = self.keys(x1, x2)
        # Keys from every process are the negatives; queries stay local (the reference code's layout).
        k1, k2 = dist.gather(k1), dist.gather(k2)
        off = dist.rank() * q1.shape[0]
        tau, scale = self.hp["temperature"], self.hp["scale_2tau"]
        loss = mocov3_loss(q1, k2, tau, scale, off) + mocov3_loss(q2, k1, tau, scale, off)
        return {"loss": loss}
