"""SePP-ID's Semantic Sampler: embed the original images, exact cosine kNN, filters, diagnostics.

Labels are read only to report pair precision; they never influence which pairs are kept.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ..errors import ConfigError
from ..eval.features import extract
from ..io import save_text
from .topk import blocked_topk


@dataclass(frozen=True)
class SamplerConfig:
    k: int = 5
    threshold: float | None = None     # keep a neighbour only if cos >= threshold
    mutual: bool = False               # keep (i, j) only if i is also among j's k nearest
    symmetrize: bool = False           # also add (j, i)
    dup_threshold: float = 0.99        # drop near-duplicates: cos > dup_threshold
    block: int = 4096
    feature: str = "backbone"          # pooled backbone feature (the only one a backbone.pt carries)

    @classmethod
    def from_cfg(cls, cfg: Mapping) -> "SamplerConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in cfg.items() if k in known})


def spps_from_topk(sims: torch.Tensor, idx: torch.Tensor, cfg: SamplerConfig):
    """Pairs (i, j) of row positions with their cosine, after the threshold/duplicate/mutual filters."""
    n, k = idx.shape
    if cfg.k > k:
        raise ConfigError(f"sampler k={cfg.k} exceeds the {k} neighbours computed")
    sims, idx = sims[:, :cfg.k], idx[:, :cfg.k]
    a = torch.arange(n).repeat_interleave(cfg.k)
    b, c = idx.reshape(-1), sims.reshape(-1)
    keep = c <= cfg.dup_threshold
    if cfg.threshold is not None:
        keep &= c >= cfg.threshold
    if cfg.mutual:
        # (i, j) is mutual when i appears in j's neighbour list.
        keep &= (idx[b] == a.view(-1, 1)).any(1)
    a, b, c = a[keep], b[keep], c[keep]
    if cfg.symmetrize:
        a, b, c = torch.cat([a, b]), torch.cat([b, a]), torch.cat([c, c])
    return dedupe(torch.stack([a, b], 1), c)


def dedupe(pairs: torch.Tensor, cos: torch.Tensor):
    if len(pairs) == 0:
        return pairs.view(0, 2), cos
    key = pairs[:, 0] * (int(pairs.max()) + 1) + pairs[:, 1]
    uniq, first = _first_occurrence(key)
    return pairs[first], cos[first]


def _first_occurrence(key: torch.Tensor):
    uniq, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), len(key), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(key)), reduce="amin")
    return uniq, first.sort().values


def pair_precision(pairs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of pairs whose two images carry the same label (NaN for no pairs)."""
    if len(pairs) == 0:
        return float("nan")
    return 100.0 * (labels[pairs[:, 0]] == labels[pairs[:, 1]]).float().mean().item()


def diagnostics(pairs_pos: torch.Tensor, cos: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor,
                n_images: int) -> dict:
    """Pair count, precision, pairs-per-image histogram, and neighbour precision at every k' <= K."""
    per_image = torch.bincount(pairs_pos[:, 0], minlength=n_images) if len(pairs_pos) else torch.zeros(n_images, dtype=torch.long)
    hist = torch.bincount(per_image)
    same = (labels[idx] == labels.view(-1, 1)).float()
    at_k = {str(k + 1): 100.0 * same[:, : k + 1].mean().item() for k in range(idx.shape[1])}
    q = torch.tensor([0.1, 0.5, 0.9])
    return {
        "num_images": n_images,
        "num_pairs": int(len(pairs_pos)),
        "pair_precision": pair_precision(pairs_pos, labels),
        "pairs_per_image_hist": {str(i): int(v) for i, v in enumerate(hist.tolist())},
        "neighbour_precision_at_k": at_k,
        "cos_quantiles": dict(zip(["q10", "q50", "q90"], torch.quantile(cos, q).tolist())) if len(cos) else {},
    }


def mine(backbone_path: Path, prepared: dict, cfg: Mapping, device="cpu", k_max: int | None = None):
    """Mine SPPS over the pretraining subset with a pretrained run's backbone (no augmentation).

    Returns (pairs [M, 2] of dataset image ids, cos [M], diagnostics).
    """
    from ..train.trainer import load_backbone

    scfg = SamplerConfig.from_cfg(cfg)
    bb, norm, _ = load_backbone(backbone_path, device)
    ids = prepared["splits"]["pretrain"]
    emb = extract(bb, prepared["train_x"][ids], norm, device, normalize=True)
    k_all = max(scfg.k, k_max or scfg.k)
    sims, idx = blocked_topk(emb, k_all, block_q=scfg.block, block_k=max(scfg.block, 16384), device=device)
    pos, cos = spps_from_topk(sims, idx, scfg)
    labels = prepared["train_y"][ids]
    diag = diagnostics(pos, cos, idx, labels, len(ids))
    diag["config"] = {k: getattr(scfg, k) for k in scfg.__dataclass_fields__}
    return ids[pos], cos, diag


def pairs_csv(pairs: torch.Tensor, cos: torch.Tensor | None = None) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["i", "j", "cos"])
    cos = cos if cos is not None else torch.full((len(pairs),), float("nan"))
    for (a, b), c in zip(pairs.tolist(), cos.tolist()):
        w.writerow([a, b, f"{c:.6f}"])
    return buf.getvalue()


def write_pairs(path: Path, pairs: torch.Tensor, cos: torch.Tensor | None = None) -> str:
    """Atomic CSV (i, j, cos); returns the sha256 of the written text (for the diagnostics)."""
    text = pairs_csv(pairs, cos)
    save_text(text, path)
    return hashlib.sha256(text.encode()).hexdigest()


def read_pairs(path: Path):
    rows = list(csv.DictReader(Path(path).read_text().splitlines()))
    if rows and set(rows[0]) != {"i", "j", "cos"}:
        raise ConfigError(f"{path} is not a pair file (columns i,j,cos); rerun the mine stage")
    pairs = torch.tensor([[int(r["i"]), int(r["j"])] for r in rows], dtype=torch.long).view(-1, 2)
    cos = torch.tensor([float(r["cos"]) for r in rows], dtype=torch.float32)
    return pairs, cos
