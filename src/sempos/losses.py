"""Contrastive losses as pure functions of embeddings (no module state).

Each is tested against analytic values and a hand-written loop reference in tests/unit/test_losses.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views of N pairs; mean over all 2N anchors.

    Anchor i's positive is its partner view; the other 2N-2 views are its negatives.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def infonce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE: q's positive is k (same row), negatives are the queue rows; batch mean.

    q and k are normalised here; `queue` is assumed normalised already (keys are enqueued normalised).
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.t()
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
