"""MoCo-v2 (Chen et al. 2020): EMA key encoder, a FIFO queue of keys, InfoNCE; symmetric by default."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import dist
from ..losses import infonce_queue, multi_positive_infonce
from .base import Algorithm, Batch
from .heads import mlp


class KeyQueue(torch.nn.Module):
    """FIFO of normalised keys in a persistent buffer; the oldest rows are overwritten first."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        # The image each key came from (-1: initial random keys), to mask known false negatives.
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))

    def push(self, k: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Enqueue the keys of the global batch (gathered in rank order), so every rank's queue is equal."""
        with torch.no_grad():
            k = dist.gather(k)
            ids = torch.full((k.shape[0],), -1, dtype=torch.long, device=k.device) if ids is None else dist.gather(ids)
            size = self.keys.shape[0]
            n = k.shape[0]
            if n > size:
                k, ids, n = k[-size:], ids[-size:], size
            rows = (self.ptr + torch.arange(n, device=k.device)) % size
            self.keys[rows] = k.to(self.keys.dtype)
            self.ids[rows] = ids.to(self.ids.device)
            self.ptr.copy_((self.ptr + n) % size)


class MoCoV2(Algorithm):
    name = "mocov2"
    HPARAMS = {"temperature": 0.2, "queue_size": 4096, "ema": 0.99, "proj_hidden": 512,
               "proj_dim": 128, "symmetric": True}
    SWITCHES = frozenset({"multi_positive", "mask_partners"})

    def __init__(self, backbone, hp, num_train, **switches):
        super().__init__(backbone, hp, num_train, **switches)
        self.projector = mlp(backbone.feat_dim, self.hp["proj_hidden"], self.hp["proj_dim"], layers=2)
        self.backbone_k = self.momentum_copy(self.backbone)
        self.projector_k = self.momentum_copy(self.projector)
        self.queue = KeyQueue(self.hp["queue_size"], self.hp["proj_dim"])
        if not self.mask_partners:
            self.warn_if_store_holds_anchors("queue_size", 2 if self.hp["symmetric"] else 1,
                                             "a false negative (positives.mask_partners masks it)")

    def momentum_pairs(self):
        return [(self.backbone, self.backbone_k), (self.projector, self.projector_k)]

    def _keys(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            if dist.world_size() == 1:
                return F.normalize(self.projector_k(self.backbone_k(x)).float(), dim=1)
            # Shuffle-BN (MoCo): keys are computed on a batch shuffled across processes, so BN statistics
            # cannot leak which query a key belongs to. The permutation is a function of the step, shared by all.
            xs = dist.gather(x)
            g = torch.Generator().manual_seed(batch.epoch * 1_000_003 + batch.step)
            perm = torch.randperm(xs.shape[0], generator=g).to(x.device)
            n, r = x.shape[0], dist.rank()
            k = F.normalize(self.projector_k(self.backbone_k(xs[perm[r * n:(r + 1) * n]])).float(), dim=1)
            ks = dist.gather(k)
            k_all = torch.empty_like(ks)
            k_all[perm] = ks
            return k_all[r * n:(r + 1) * n]

    def _loss(self, q, k, ids_q, ids_k, queue, queue_ids):
        tau = self.hp["temperature"]
        queue_mask = self.same_or_partner(ids_q, queue_ids) if self.mask_partners else None
        if self.multi_positive:
            return multi_positive_infonce(q, k, queue, self.same_or_partner(ids_q, ids_k), tau, queue_mask)
        return infonce_queue(q, k, queue, tau, queue_mask)

    def training_step(self, x1: torch.Tensor, x2: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        queue, queue_ids = self.queue.keys.clone(), self.queue.ids.clone()
        a, b = batch.idx_a, batch.idx_b
        if self.hp["symmetric"]:
            q1, q2 = self.projector(self.backbone(torch.cat([x1, x2]))).float().chunk(2)
            k1, k2 = torch.cat([self._keys(x1, batch), self._keys(x2, batch)]).chunk(2)
            loss = 0.5 * (self._loss(q1, k2, a, b, queue, queue_ids) + self._loss(q2, k1, b, a, queue, queue_ids))
            self.queue.push(torch.cat([k1, k2]), torch.cat([a, b]))
        else:
            q1 = self.projector(self.backbone(x1)).float()
            k2 = self._keys(x2, batch)
            loss = self._loss(q1, k2, a, b, queue, queue_ids)
            self.queue.push(k2, b)
        return {"loss": loss}
