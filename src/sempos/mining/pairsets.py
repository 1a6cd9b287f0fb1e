"""Positive sources beyond augmentation, and the matched pair sets of the semantic-pair study.

All pairs are [N, 2] int64 tensors of dataset image ids; every builder is deterministic under its seed.
  oracle  random same-label pairs (the curated-pairs proxy; labels *are* used, on purpose)
  random  random pairs (the false-pair control)
  S       curated semantic pairs: same class, distinct images, each image in at most one pair,
          near-duplicates rejected under a fixed feature extractor when features are given
  A       augmented pairs (x_a, x_a) over the first image of each S pair: same classes, same count
  A2      augmented pairs drawn each epoch from the same 2N images S uses (separates image diversity
          from pairing)
  M       mined pairs matched to S's class composition (by the anchor's label) and count
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 9_973 + 17)


def _check_pool(pool: torch.Tensor, what: str) -> torch.Tensor:
    pool = torch.as_tensor(pool, dtype=torch.long).flatten()
    if len(pool) < 2:
        raise ConfigError(f"{what}: the image pool has {len(pool)} images; at least 2 are needed")
    return pool


def random_pairs(pool: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    pool = _check_pool(pool, "random pairs")
    g = _gen(seed)
    a = pool[torch.randint(len(pool), (count,), generator=g)]
    offset = torch.randint(1, len(pool), (count,), generator=g)  # never pairs an image with itself
    pos_a = torch.searchsorted(pool.sort().values, a)
    b = pool.sort().values[(pos_a + offset) % len(pool)]
    return torch.stack([a, b], 1)


def oracle_pairs(labels: torch.Tensor, pool: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` random pairs (i, j), i != j, with labels[i] == labels[j], anchors spread over the pool."""
    pool = _check_pool(pool, "oracle pairs")
    g = _gen(seed)
    order = torch.argsort(labels[pool], stable=True)
    members = pool[order]                       # pool sorted by class
    y = labels[members]
    classes, sizes = torch.unique_consecutive(y, return_counts=True)
    if (sizes < 2).any():
        raise ConfigError(f"oracle pairs: classes {classes[sizes < 2].tolist()} have a single image in the pool")
    starts = torch.cumsum(sizes, 0) - sizes
    reps = -(-count // len(pool))
    pos = torch.cat([torch.randperm(len(pool), generator=g) for _ in range(reps)])[:count]
    cls = torch.searchsorted(classes, y[pos])
    start, size = starts[cls], sizes[cls]
    # A uniform non-zero offset within the anchor's class never lands on the anchor itself.
    offset = (torch.rand(count, generator=g) * (size - 1)).long() + 1
    partner = start + (pos - start + offset) % size
    return torch.stack([members[pos], members[partner]], 1)


def pair_precision(pairs: torch.Tensor, labels: torch.Tensor) -> float:
    from .sampler import pair_precision as _pp

    return _pp(pairs, labels)


def build_S(labels: torch.Tensor, pool: torch.Tensor, pairs_per_class: int, seed: int,
            features: torch.Tensor | None = None, dup_threshold: float = 0.95) -> torch.Tensor:
    """Same-class, image-disjoint pairs, `pairs_per_class` per class of the pool, near-duplicates rejected.

    `features` (L2-normalised, indexed by dataset id) come from a fixed extractor; a candidate pair whose
    cosine exceeds dup_threshold is rejected and its second image returned to the candidates.
    """
    pool = _check_pool(pool, "set S")
    g = _gen(seed)
    out = []
    for c in torch.unique(labels[pool]).tolist():
        members = pool[labels[pool] == c]
        members = members[torch.randperm(len(members), generator=g)].tolist()
        pairs_c = []
        while members and len(pairs_c) < pairs_per_class:
            a = members.pop(0)
            for pos, b in enumerate(members):
                if features is None or float(features[a] @ features[b]) <= dup_threshold:
                    members.pop(pos)
                    pairs_c.append((a, b))
                    break
        if len(pairs_c) < pairs_per_class:
            raise ConfigError(f"set S: class {c} yields only {len(pairs_c)} disjoint non-duplicate pairs, "
                              f"fewer than pairs_per_class={pairs_per_class}; lower it")
        out += pairs_c
    return torch.tensor(out, dtype=torch.long).view(-1, 2)


def build_A(S: torch.Tensor) -> torch.Tensor:
    """(x_a, x_a) for the first image of each S pair: the same classes and count, N images."""
    return torch.stack([S[:, 0], S[:, 0]], 1)


class A2Sampler:
    """N augmented pairs (x, x) per epoch drawn from the 2N images of S, without replacement."""

    def __init__(self, S: torch.Tensor) -> None:
        self.images = torch.unique(S.flatten())
        self.n = len(S)

    def __len__(self) -> int:
        return self.n

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch) * 31 + 5)
        pick = self.images[torch.randperm(len(self.images), generator=g)[: self.n]]
        return torch.stack([pick, pick], 1)


def build_M(mined: torch.Tensor, labels: torch.Tensor, S: torch.Tensor, seed: int) -> torch.Tensor:
    """Mined pairs with the class composition of S (by the anchor's label) and its count.

    Pairs are chosen among those mined from each class's anchors; a class with too few mined pairs
    is an error naming the fix (mine more neighbours with a larger k).
    """
    g = _gen(seed)
    out = []
    anchor_y = labels[mined[:, 0]]
    for c, need in zip(*torch.unique(labels[S[:, 0]], return_counts=True)):
        cand = mined[anchor_y == c]
        if len(cand) < int(need):
            raise ConfigError(f"set M: class {int(c)} has {len(cand)} mined pairs, {int(need)} needed; "
                              f"raise the sampler's k or lower pairs_per_class")
        out.append(cand[torch.randperm(len(cand), generator=g)[: int(need)]])
    return torch.cat(out)
