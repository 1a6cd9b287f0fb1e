"""Contrastive losses as pure functions of embeddings (no module state).

Each is tested against analytic values and a hand-written loop reference in tests/unit/test_losses.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import InvalidValueError


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
    return F.cross_entropy(sim.masked_fill(drop, -math.inf), target)


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
        neg = neg.masked_fill(queue_mask, -math.inf)
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def multi_positive_infonce(q: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor, pos_mask: torch.Tensor,
                           temperature: float, queue_mask: torch.Tensor | None = None,
                           batch_negatives: bool = False) -> torch.Tensor:
    """SePP-ID variant M (docs/science.md §1.2): several positives per anchor, MoCo-style denominator.

    For anchor a: -(1/|P(a)|) sum_{p in P(a)} log[exp(q.k_p/t) / sum_{c in C(a)} exp(q.c/t)],
    with P(a) = pos_mask[a] over the batch keys (its own key plus its SPPS partners' keys in the batch;
    a row without positives contributes 0). C(a) = P(a) + the queue (minus `queue_mask`) by default:
    as in MoCo, batch keys outside P(a) are not negatives, so with pos_mask = I this is exactly
    infonce_queue. `batch_negatives=True` reads docs/science.md's "keys u Q" literally: every batch key joins
    the denominator (then pos_mask = I is InfoNCE with in-batch negatives added).
    """
    q = F.normalize(q, dim=1)
    keys = F.normalize(keys, dim=1)
    if pos_mask.shape != (q.shape[0], keys.shape[0]):
        raise InvalidValueError(f"pos_mask must be [{q.shape[0]}, {keys.shape[0]}], got {tuple(pos_mask.shape)}")
    batch = q @ keys.t()
    if not batch_negatives:
        batch = batch.masked_fill(~pos_mask, -math.inf)
    neg = q @ queue.t()
    if queue_mask is not None:
        neg = neg.masked_fill(queue_mask, -math.inf)
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
    logp = torch.log_softmax((z @ z.t() / temperature).masked_fill(eye, -math.inf), dim=1)
    pos_mask = pos_mask & ~eye
    return (-(logp.masked_fill(~pos_mask, 0.0).sum(1) / pos_mask.sum(1).clamp(min=1))).mean()


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's normalised MSE, 2 - 2 cos(p, z), batch mean; z is the (detached) target projection."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's negative cosine with stop-gradient on z, batch mean."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def nnclr_loss(nn_z: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """NNCLR: the nearest neighbour of one view's projection is the positive of the other view's prediction.

    logits[i, j] = nn(z_i) . p_j / t; the positive of row i is column i (InfoNCE over the batch).
    """
    nn_z, p = F.normalize(nn_z, dim=1), F.normalize(p, dim=1)
    logits = nn_z @ p.t() / temperature
    return F.cross_entropy(logits, torch.arange(p.shape[0], device=p.device))


def mocov3_loss(q: torch.Tensor, k: torch.Tensor, temperature: float, scale_2tau: bool = True,
                offset: int = 0) -> torch.Tensor:
    """MoCo-v3's contrastive loss: InfoNCE over the batch keys, times 2*tau as in the reference code.

    `k` may hold the keys of every process (gathered); query i's positive is then key offset + i.
    """
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = q @ k.t() / temperature
    loss = F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device) + offset)
    return loss * (2 * temperature) if scale_2tau else loss


def snclr_weights(y: torch.Tensor, neighbours: torch.Tensor, threshold: bool = False) -> torch.Tensor:
    """Positiveness of each anchor's K neighbours: softmax_i(y_n . nn_{n,i}) on normalised vectors.

    No temperature (as in the official code). `threshold` zeroes weights <= 1/K (not renormalised).
    y [B, D] (online projection), neighbours [B, K, D]; returns [B, K].
    """
    y = F.normalize(y, dim=1)
    nb = F.normalize(neighbours, dim=2)
    w = torch.softmax(torch.einsum("bd,bkd->bk", y, nb), dim=1)
    if threshold:
        w = torch.where(w > 1.0 / w.shape[1], w, torch.zeros_like(w))
    return w


def _snclr_logp(z: torch.Tensor, keys: torch.Tensor, neighbours: torch.Tensor, temperature: float, offset: int):
    """log p over the candidate set C = all keys and all their neighbours, at each anchor's own entries.

    Returns (log p_n(k_n) [B], log p_n(NN(k_n)_i) [B, K]); anchor n's own key is keys[offset + n].
    """
    b_all, dim = keys.shape
    b = z.shape[0]
    cands = torch.cat([keys, neighbours.reshape(-1, dim)])
    z, cands = F.normalize(z, dim=1), F.normalize(cands, dim=1)
    logp = torch.log_softmax(z @ cands.t() / temperature, dim=1)
    own = torch.arange(b, device=z.device) + offset
    logp_own = logp[torch.arange(b, device=z.device), own]
    logp_nb = logp[:, b_all:].reshape(b, b_all, -1)[torch.arange(b, device=z.device), own]
    return logp_own, logp_nb


def snclr_code_loss(z: torch.Tensor, keys: torch.Tensor, neighbours: torch.Tensor, w: torch.Tensor,
                    temperature: float, scale_2tau: bool = True, offset: int = 0) -> torch.Tensor:
    """SNCLR as the official code computes it (sum of logs with soft targets).

    L = (2t) * mean_n [ -log p_n(k_n) - sum_i w_{n,i} log p_n(NN(k_n)_i) ], p over all keys and neighbours.
    z [B, D] online predictions (local anchors), keys [B', D] momentum keys of the other view (all
    processes; the anchors' own at `offset`), neighbours [B', K, D], w [B, K] the anchors' weights.
    """
    own, own_nb = _snclr_logp(z, keys, neighbours, temperature, offset)
    loss = -(own + (w * own_nb).sum(1)).mean()
    return loss * (2 * temperature) if scale_2tau else loss


def snclr_paper_loss(z: torch.Tensor, keys: torch.Tensor, neighbours: torch.Tensor, w: torch.Tensor,
                     temperature: float, scale_2tau: bool = False, offset: int = 0) -> torch.Tensor:
    """SNCLR as the paper writes it (log of a weighted sum over the own key, w_0 = 1, and neighbours).

    L = -mean_n log[ p_n(k_n) + sum_i w_{n,i} p_n(NN(k_n)_i) ], p over all keys and neighbours.
    """
    own, own_nb = _snclr_logp(z, keys, neighbours, temperature, offset)
    terms = torch.cat([own.unsqueeze(1), own_nb + torch.log(w.clamp(min=1e-30))], 1)
    loss = -torch.logsumexp(terms, dim=1).mean()
    return loss * (2 * temperature) if scale_2tau else loss


def mask_partners_as_negatives(anchor_ids: torch.Tensor, negative_ids: torch.Tensor, partners=None,
                               same_image: bool = True) -> torch.Tensor:
    """The false-negative switch (docs/science.md §1.2): [B, Q] True where a negative must leave the denominator.

    anchor_ids [B] are the batch's image ids; negative_ids [Q] the ids the negatives came from (a MoCo
    queue stores the image id of every key it holds; -1 marks entries of no image, never masked).
    A negative is masked when it is an SPPS partner of the anchor, in either direction, or, with
    `same_image`, an older view of the anchor's own image. `partners` is None, an object with
    lookup(a, b) -> [len(a), len(b)] bool (positives.partners.PartnerIndex, the fast path inside a
    training loop), or an [M, 2] tensor of (i, j) pairs (sorted into a lookup on every call).
    The result is the `queue_mask` of infonce_queue / multi_positive_infonce.
    """
    a = anchor_ids.long().view(-1, 1)
    b = negative_ids.long().to(a.device).view(1, -1)
    valid = (a >= 0) & (b >= 0)
    mask = (a == b) & valid if same_image else torch.zeros(valid.shape, dtype=torch.bool, device=a.device)
    if partners is None:
        return mask
    if hasattr(partners, "lookup"):
        return mask | (partners.lookup(a.flatten(), b.flatten()).to(a.device) & valid)
    pairs = torch.as_tensor(partners, device=a.device).long().view(-1, 2)
    if len(pairs) == 0 or mask.numel() == 0:
        return mask
    n = int(max(int(pairs.max()), int(a.max()), int(b.max()))) + 1
    known = torch.unique(torch.cat([pairs[:, 0] * n + pairs[:, 1], pairs[:, 1] * n + pairs[:, 0]]))
    code = (a.clamp(min=0) * n + b.clamp(min=0)).flatten()
    hit = known[torch.searchsorted(known, code).clamp(max=len(known) - 1)] == code
    return mask | (hit.view(valid.shape) & valid)
