"""Contrastive losses as pure functions of embeddings (no module state).

Each is tested against analytic values and a hand-written loop reference in tests/unit/test_losses.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
            neg_mask: torch.Tensor | None = None) -> torch.Tensor:
    """SimCLR's NT-Xent over the 2N views of N pairs; mean over all 2N anchors.

    Anchor i's positive is its partner view; the other 2N-2 views are its negatives, except where
    `neg_mask` [2N, 2N] is True (known false negatives, e.g. SePP partners), which leave the denominator.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    drop = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    if neg_mask is not None:
        drop = drop | (neg_mask & ~F.one_hot(target, 2 * n).bool())
    return F.cross_entropy(sim.masked_fill(drop, float("-inf")), target)


def infonce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float,
                  queue_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MoCo's InfoNCE: q's positive is k (same row), negatives are the queue rows; batch mean.

    q and k are normalised here; `queue` is assumed normalised already (keys are enqueued normalised).
    `queue_mask` [B, Q] True removes a queue entry from that anchor's negatives (known false negatives).
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.t()
    if queue_mask is not None:
        neg = neg.masked_fill(queue_mask, float("-inf"))
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def multi_positive_infonce(q: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor, pos_mask: torch.Tensor,
                           temperature: float, queue_mask: torch.Tensor | None = None) -> torch.Tensor:
    """SePP-ID variant M: several positives per anchor, MoCo-style denominator.

    For anchor a: -(1/|P(a)|) sum_{p in P(a)} log[exp(q.k_p/t) / (sum_{c in P(a)} exp(q.k_c/t) + sum_Q exp(q.n/t))]
    with P(a) = pos_mask[a] over the batch keys (its own key plus its SPPS partners' keys in the batch).
    Batch keys outside P(a) are not negatives, as in MoCo, so with pos_mask = I this is infonce_queue.
    """
    q = F.normalize(q, dim=1)
    keys = F.normalize(keys, dim=1)
    batch = (q @ keys.t()).masked_fill(~pos_mask, float("-inf"))
    neg = q @ queue.t()
    if queue_mask is not None:
        neg = neg.masked_fill(queue_mask, float("-inf"))
    logp = torch.log_softmax(torch.cat([batch, neg], 1) / temperature, dim=1)[:, : keys.shape[0]]
    per_anchor = -(logp.masked_fill(~pos_mask, 0.0).sum(1) / pos_mask.sum(1).clamp(min=1))
    return per_anchor.mean()


def multi_positive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
                           pos_mask: torch.Tensor) -> torch.Tensor:
    """SePP-ID variant M for SimCLR: each of the 2N views averages -log p over its positives.

    `pos_mask` [2N, 2N] marks the positives (it must include each view's partner view); all other views
    stay negatives. With only the partner views marked this equals nt_xent.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    logp = torch.log_softmax((z @ z.t() / temperature).masked_fill(eye, float("-inf")), dim=1)
    pos_mask = pos_mask & ~eye
    return (-(logp.masked_fill(~pos_mask, 0.0).sum(1) / pos_mask.sum(1).clamp(min=1))).mean()
