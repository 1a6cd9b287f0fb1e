"""A FIFO memory bank of normalised embeddings with exact cosine top-K retrieval.

Shared by NNCLR (support set), SNCLR (candidate neighbours). The bank, its write pointer, and the
image id / label of every entry (diagnostics only: purity and self-hit rate) are persistent buffers,
so checkpoints carry them. Pushes are gathered across processes first (rank order), so every rank
holds the same bank; `scope="per_gpu"` keeps SNCLR's original per-process banks instead.
No host<->device copies happen in push/topk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import dist
from .errors import InvalidValueError


class MemoryBank(nn.Module):
    def __init__(self, size: int, dim: int, scope: str = "global") -> None:
        super().__init__()
        if scope not in ("global", "per_gpu"):
            raise InvalidValueError(f"methods.<method>.bank_scope must be 'global' or 'per_gpu', not {scope!r}")
        self.scope = scope
        self.register_buffer("bank", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.bank.shape[0]

    def push(self, z: torch.Tensor, ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> None:
        """Enqueue normalised `z` (with image ids / labels, -1 when unknown), overwriting the oldest rows.

        With scope "global" the rows of every process are gathered first (rank order), so the banks stay
        identical without re-broadcasting buffers. Write rows and pointer are computed on the device.
        """
        with torch.no_grad():
            z = F.normalize(z.detach().float(), dim=1)
            n_local = z.shape[0]
            ids = torch.full((n_local,), -1, dtype=torch.long, device=z.device) if ids is None else ids.long()
            labels = torch.full((n_local,), -1, dtype=torch.long, device=z.device) if labels is None else labels.long()
            if self.scope == "global":
                z, ids, labels = dist.gather(z), dist.gather(ids), dist.gather(labels)
            n = z.shape[0]
            if n > self.size:
                z, ids, labels, n = z[-self.size:], ids[-self.size:], labels[-self.size:], self.size
            rows = (self.ptr + torch.arange(n, device=z.device)) % self.size
            self.bank[rows] = z.to(self.bank.dtype)
            self.ids[rows] = ids
            self.labels[rows] = labels
            self.ptr.copy_((self.ptr + n) % self.size)
            self.filled.copy_(torch.clamp(self.filled + n, max=self.size))

    def topk(self, query: torch.Tensor, k: int):
        """(sims [B, k], bank rows [B, k], neighbour vectors [B, k, D]) by cosine, most similar first."""
        with torch.no_grad():
            q = F.normalize(query.detach().float(), dim=1)
            sims, idx = (q @ self.bank.t().float()).topk(k, dim=1)
            return sims, idx, self.bank[idx]

    def purity(self, anchor_labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Share of retrieved neighbours whose label equals the anchor's.

        Pairs where either label is unknown (-1: the initial random rows, or unlabelled anchors) are left
        out of both counts, so an unfilled bank does not read as impure.
        """
        with torch.no_grad():
            nl = self.labels[idx]
            valid = (nl >= 0) & (anchor_labels.view(-1, 1) >= 0)
            same = (nl == anchor_labels.view(-1, 1)) & valid
            return same.sum().float() / valid.sum().clamp(min=1).float()

    def self_hit_rate(self, anchor_ids: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Share of anchors whose neighbours include a stale copy of their own image."""
        with torch.no_grad():
            return (self.ids[idx] == anchor_ids.view(-1, 1)).any(1).float().mean()
