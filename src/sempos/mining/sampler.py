"""SePP-ID's Semantic Sampler (docs/science.md §1.2, stage 1): embed the original images, exact cosine kNN,
filters, diagnostics, and the SPPS pair file.

Labels are read only to report precision; they never influence which pairs are kept.
Pairs are built on row positions of the embedded subset and mapped to dataset image ids at the end.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

import torch

from ..errors import ConfigError, InvalidValueError
from ..io import save_text
from .topk import blocked_topk

log = logging.getLogger(__name__)
EMB_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# The one default of positives.dup_threshold (mined pairs and the S pair set alike): near-duplicates are
# cos > 0.99 (docs/science.md §1.2).
DUP_THRESHOLD = 0.99


@dataclass(frozen=True)
class SamplerConfig:
    """The sampler's settings; docs/science.md's defaults (K 5, theta off, near-duplicates cos > 0.99)."""

    k: int = 5                          # neighbours per image that may form a pair
    threshold: float | None = None      # keep (i, j) only if cos >= threshold; None = off
    mutual: bool = False                # keep (i, j) only if i is also among j's k nearest (mutual_knn_only)
    symmetrize: bool = False            # also add (j, i) for every kept (i, j)
    dup_threshold: float | None = DUP_THRESHOLD  # drop near-duplicates, cos > dup_threshold; None = off
    dedupe: bool = True                 # drop repeated (i, j) (symmetrize re-adds pairs found from both ends)
    k_max: int = 0                      # neighbours computed for the precision-vs-K table (0 = k)
    block: int = 4096                   # query block of the top-K (key blocks are max(block, 16384))
    emb_dtype: str = "fp32"             # fp16/bf16 halve the embedding memory (ImageNet on one GPU)
    feature: str = "backbone"           # pooled backbone feature: the only one a backbone.pt carries

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"sampler k must be a positive integer, got {self.k!r}")
        if not isinstance(self.k_max, int) or self.k_max < 0:
            raise ConfigError(f"sampler k_max must be an integer >= 0, got {self.k_max!r}")
        for name in ("threshold", "dup_threshold"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and -1.0 <= v <= 1.0):
                raise ConfigError(f"sampler {name} must be a cosine in [-1, 1] or null, got {v!r}")
        if self.threshold is not None and self.dup_threshold is not None and self.threshold > self.dup_threshold:
            raise ConfigError(f"sampler threshold {self.threshold} > dup_threshold {self.dup_threshold}: "
                              f"every pair would be dropped either as too far or as a near-duplicate")
        if not isinstance(self.block, int) or self.block < 1:
            raise ConfigError(f"sampler block must be a positive integer, got {self.block!r}")
        if self.emb_dtype not in EMB_DTYPES:
            raise ConfigError(f"sampler emb_dtype must be one of {sorted(EMB_DTYPES)}, got {self.emb_dtype!r}")
        if self.feature != "backbone":
            raise ConfigError(f"sampler feature {self.feature!r} is not available: backbone.pt stores only the "
                              f"backbone, so the pooled backbone feature ('backbone') is the one option")

    @property
    def k_all(self) -> int:
        return max(self.k, self.k_max)

    @classmethod
    def from_cfg(cls, cfg: Mapping | None) -> "SamplerConfig":
        """From a method's `positives` entry, which also carries source/from/mix/... for other stages.

        Keys that are not sampler settings are ignored here (the params schema rejects typos).
        `mutual_knn_only` (docs/science.md's name) is accepted as an alias of `mutual`.
        """
        cfg = dict(cfg or {})
        if "mutual_knn_only" in cfg:
            alias = cfg.pop("mutual_knn_only")
            if "mutual" in cfg and bool(cfg["mutual"]) != bool(alias):
                raise ConfigError(f"sampler: mutual={cfg['mutual']} contradicts mutual_knn_only={alias}")
            cfg["mutual"] = alias
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in known})


def _pair_keys(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    return a.long() * n + b.long()


def spps_from_topk(sims: torch.Tensor, idx: torch.Tensor, cfg: SamplerConfig):
    """Pairs (i, j) of row positions with their cosine, after the filters, in a deterministic order.

    Filters on each of the first cfg.k neighbours of every row: near-duplicate (cos > dup_threshold),
    threshold (cos >= threshold), mutual (i is also among j's first k); then symmetrize and dedupe.
    Pairs come out ordered by anchor, then by neighbour rank (symmetrized additions after them).
    """
    if sims.shape != idx.shape or idx.ndim != 2:
        raise InvalidValueError(f"sims {tuple(sims.shape)} and idx {tuple(idx.shape)} must both be [N, K]")
    n, k_avail = idx.shape
    if cfg.k > k_avail:
        raise ConfigError(f"sampler k={cfg.k} exceeds the {k_avail} neighbours computed")
    k = cfg.k
    sims, idx = sims[:, :k], idx[:, :k]
    a = torch.arange(n).repeat_interleave(k)
    b, c = idx.reshape(-1).long(), sims.reshape(-1).float()
    keep = b != a  # top-K already excludes self; this guards hand-made inputs
    if cfg.dup_threshold is not None:
        keep &= c <= cfg.dup_threshold
    if cfg.threshold is not None:
        keep &= c >= cfg.threshold
    if cfg.mutual:
        # (i, j) is mutual when (j, i) is also a kNN edge. A sorted key list + searchsorted costs
        # O(Nk log Nk) memory-light, where gathering j's list for every edge would be an [Nk, k] tensor.
        edges = torch.sort(_pair_keys(a, b, n)).values
        rev = _pair_keys(b, a, n)
        pos = torch.searchsorted(edges, rev).clamp(max=len(edges) - 1)
        keep &= edges[pos] == rev
    a, b, c = a[keep], b[keep], c[keep]
    if cfg.symmetrize:
        a, b, c = torch.cat([a, b]), torch.cat([b, a]), torch.cat([c, c])
    pairs = torch.stack([a, b], 1)
    return dedupe(pairs, c) if cfg.dedupe else (pairs, c)


def dedupe(pairs: torch.Tensor, cos: torch.Tensor):
    """Keep the first occurrence of every ordered pair (i, j), preserving the order."""
    if len(pairs) == 0:
        return pairs.view(0, 2), cos
    key = _pair_keys(pairs[:, 0], pairs[:, 1], int(pairs.max()) + 1)
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(key), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(key)), reduce="amin")
    first = first.sort().values
    return pairs[first], cos[first]


def pair_precision(pairs: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage (0-100) of pairs whose two images carry the same label; NaN when there are no pairs.

    Pairs touching an unlabeled image (label -1, e.g. STL-10's unlabeled split) are left out.
    """
    pairs = torch.as_tensor(pairs).long().view(-1, 2)
    labels = torch.as_tensor(labels)
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    known = (a >= 0) & (b >= 0)
    if not bool(known.any()):
        return math.nan
    return 100.0 * (a[known] == b[known]).float().mean().item()


def _hist(counts: torch.Tensor) -> dict:
    return {str(i): int(v) for i, v in enumerate(torch.bincount(counts).tolist())}


def diagnostics(pairs_pos: torch.Tensor, cos: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor,
                n_images: int, sims: torch.Tensor | None = None, cfg: SamplerConfig | None = None) -> dict:
    """The sampler report; pairs_pos/idx are row positions, labels those of the embedded rows.

    num_pairs, pair_precision (%), pairs_per_image_hist (how many images anchor 0, 1, ... pairs),
    images_in_pairs_hist (how many images occur in 0, 1, ... pairs on either side), coverage (% of images
    in at least one pair), neighbour_precision_at_k (% same-label among the first k' neighbours, every
    k' <= K) and, given sims and cfg, precision_vs_k: the SPPS the same filters give with k' neighbours.
    """
    labels = torch.as_tensor(labels)
    pairs_pos = pairs_pos.long().view(-1, 2)
    anchored = torch.bincount(pairs_pos[:, 0], minlength=n_images)
    involved = torch.bincount(pairs_pos.flatten(), minlength=n_images)
    known = (labels[idx] >= 0) & (labels.view(-1, 1) >= 0)  # unlabeled images (-1) count on neither side
    same = ((labels[idx] == labels.view(-1, 1)) & known).float()
    at_k = {str(k + 1): 100.0 * s / max(c, 1.0) for k, (s, c) in
            enumerate(zip(same.cumsum(1).sum(0).tolist(), known.float().cumsum(1).sum(0).tolist()))}
    q = torch.tensor([0.1, 0.5, 0.9])
    out = {
        "num_images": int(n_images),
        "num_pairs": int(len(pairs_pos)),
        "pair_precision": pair_precision(pairs_pos, labels),
        "pairs_per_image_hist": _hist(anchored),
        "images_in_pairs_hist": _hist(involved),
        "coverage": 100.0 * (involved > 0).float().mean().item() if n_images else math.nan,
        "neighbour_precision_at_k": at_k,
        "cos_quantiles": dict(zip(["q10", "q50", "q90"], torch.quantile(cos.float(), q).tolist())) if len(cos) else {},
    }
    if sims is not None and cfg is not None:
        out["candidates"] = int(idx.shape[0] * cfg.k)
        out["removed_by"] = _removed_by(sims, idx, cfg)
        table = {}
        for kk in range(1, idx.shape[1] + 1):
            p, _ = spps_from_topk(sims, idx, _with(cfg, k=kk))
            table[str(kk)] = {"num_pairs": int(len(p)), "pair_precision": pair_precision(p, labels)}
        out["precision_vs_k"] = table
    return out


def _removed_by(sims: torch.Tensor, idx: torch.Tensor, cfg: SamplerConfig) -> dict:
    """How many of the N x k candidate pairs each filter alone would remove (explains an empty SPPS)."""
    none = _with(cfg, threshold=None, dup_threshold=None, mutual=False, symmetrize=False, dedupe=False)
    total = len(spps_from_topk(sims, idx, none)[0])
    return {name: total - len(spps_from_topk(sims, idx, _with(none, **{name: getattr(cfg, name)}))[0])
            for name in ("dup_threshold", "threshold", "mutual")}


def _with(cfg: SamplerConfig, **changes) -> SamplerConfig:
    return SamplerConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(cfg)}, **changes})


def mine(backbone_path: Path, prepared: dict, cfg: Mapping | SamplerConfig | None, device="cpu",
         k_max: int | None = None):
    """Mine the SPPS over the pretraining subset with a pretrained run's backbone.

    Every image of prepared['splits']['pretrain'] is embedded once, without augmentation (eval-mode
    backbone, resize to the pretraining size and normalise only), as L2-normalised pooled features.
    Returns (pairs [M, 2] int64 of dataset image ids, cos [M] float32, diagnostics dict).
    `k_max` (or cfg k_max) > k computes more neighbours for the precision-vs-K table only.
    """
    from ..eval.features import extract
    from ..models.checkpoint import load_backbone

    scfg = cfg if isinstance(cfg, SamplerConfig) else SamplerConfig.from_cfg(cfg)
    if k_max:
        scfg = _with(scfg, k_max=int(k_max))
    ids = torch.as_tensor(prepared["splits"]["pretrain"]).long().flatten()
    n = len(ids)
    if n < 2 or scfg.k > n - 1:
        raise ConfigError(f"sampler k={scfg.k} needs at least k + 1 = {scfg.k + 1} pretraining images; "
                          f"the pretraining subset has {n}. Lower k or enlarge the subset")
    if not Path(backbone_path).exists():
        raise ConfigError(f"sampler backbone {backbone_path} not found: pretrain the `from` method first")
    k_all = min(scfg.k_all, n - 1)  # the report cannot ask for more neighbours than there are images
    bb, norm, meta = load_backbone(Path(backbone_path), device)
    emb = extract(bb, prepared["train_x"][ids], norm, device, out_size=meta.get("image_size"), normalize=True,
                  desc="mine: embed")
    emb = emb.to(EMB_DTYPES[scfg.emb_dtype])
    sims, idx = blocked_topk(emb, k_all, block_q=scfg.block, block_k=max(scfg.block, 16384), device=device)
    del emb
    pos, cos = spps_from_topk(sims, idx, scfg)
    labels = torch.as_tensor(prepared["train_y"])[ids]  # the report only
    diag = diagnostics(pos, cos, idx, labels, n, sims=sims, cfg=scfg)
    diag["config"] = {f.name: getattr(scfg, f.name) for f in fields(scfg)}
    if len(pos) == 0:
        log.warning("the Semantic Sampler kept no pairs out of %d candidates (removed by: %s); an untrained "
                    "backbone puts most images above dup_threshold", diag["candidates"], diag["removed_by"])
    diag["feature_dim"] = int(meta.get("feat_dim", 0)) or None
    return ids[pos].view(-1, 2), cos, diag


def pairs_csv(pairs: torch.Tensor, cos: torch.Tensor | None = None) -> str:
    """The pair file's text: header `i,j,cos`, one pair per line, cos with 6 decimals (nan if unknown)."""
    pairs = torch.as_tensor(pairs).long().view(-1, 2)
    cos = torch.full((len(pairs),), math.nan) if cos is None else torch.as_tensor(cos).flatten()
    if len(cos) != len(pairs):
        raise InvalidValueError(f"{len(pairs)} pairs but {len(cos)} cosines")
    buf = io.StringIO()
    buf.write("i,j,cos\n")
    buf.writelines(f"{a},{b},{'nan' if math.isnan(c) else f'{c:.6f}'}\n"
                   for (a, b), c in zip(pairs.tolist(), cos.tolist()))
    return buf.getvalue()


def write_pairs(path: Path, pairs: torch.Tensor, cos: torch.Tensor | None = None) -> str:
    """Write the CSV (i, j, cos) atomically; return the sha256 of its bytes (for the diagnostics json)."""
    text = pairs_csv(pairs, cos)
    save_text(text, path)
    return hashlib.sha256(text.encode()).hexdigest()


def read_pairs(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(pairs [M, 2] int64, cos [M] float32) from a file written by write_pairs."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"pair file {path} not found; run the mine stage")
    try:
        df = pd.read_csv(path, dtype={"i": "int64", "j": "int64", "cos": "float64"})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ConfigError(f"{path} is not a pair file (columns i,j,cos): {e}; rerun the mine stage") from None
    if list(df.columns) != ["i", "j", "cos"]:
        raise ConfigError(f"{path} is not a pair file (columns i,j,cos, found {list(df.columns)}); "
                          f"rerun the mine stage")
    pairs = torch.from_numpy(df[["i", "j"]].to_numpy(copy=True)).long().view(-1, 2)
    if len(pairs) and int(pairs.min()) < 0:
        raise ConfigError(f"{path} holds negative image ids; rerun the mine stage")
    return pairs, torch.from_numpy(df["cos"].to_numpy(copy=True)).float()
