"""SimCLR (Chen et al. 2020): NT-Xent over the two views of each pair."""

from __future__ import annotations

import torch

from .. import dist
from ..losses import multi_positive_nt_xent, nt_xent
from .base import Algorithm, Batch
from .heads import mlp


class SimCLR(Algorithm):
    name = "simclr"
    HPARAMS = {"temperature": 0.2, "proj_hidden": 512, "proj_dim": 128}
    SWITCHES = frozenset({"multi_positive", "mask_partners"})

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        self.projector = mlp(backbone.feat_dim, self.hp["proj_hidden"], self.hp["proj_dim"], layers=2)

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        z = self.projector(self.backbone(torch.cat([x1, x2])))
        z1, z2 = z.float().chunk(2)
        # Negatives come from the global batch: every process sees every other process's views.
        z1, z2 = dist.gather_with_grad(z1), dist.gather_with_grad(z2)
        tau = self.hp["temperature"]
        if not (self.multi_positive or self.mask_partners):
            return {"loss": nt_xent(z1, z2, tau)}
        ids = torch.cat([dist.gather(batch.idx_a), dist.gather(batch.idx_b)])
        related = self.same_or_partner(ids, ids)
        if self.multi_positive:
            n = z1.shape[0]
            partner_view = torch.roll(torch.eye(2 * n, dtype=torch.bool, device=z1.device), n, dims=1)
            return {"loss": multi_positive_nt_xent(z1, z2, tau, related | partner_view)}
        return {"loss": nt_xent(z1, z2, tau, neg_mask=related)}
