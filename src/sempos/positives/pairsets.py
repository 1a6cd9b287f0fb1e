"""Positive sources beyond augmentation, and the matched pair sets of the semantic-pair study.

All pairs are [N, 2] int64 tensors of dataset image ids; every builder is a pure function of its seed.
  oracle  random same-label pairs: the SePP-ID ablation "oracle SPPS" (labels *are* used, on purpose)
  random  random pairs (the false-pair control)
  S       curated semantic pairs (docs/science.md §3.2): same class, distinct images, each image in at most one
          pair, near-duplicates rejected under a fixed feature extractor when features are given
  A       augmented pairs (x_a, x_a) over the first image of each S pair: same classes, same count, N images
  A2      augmented pairs drawn each epoch from the same 2N images S uses (separates image diversity
          from pairing): an object with for_epoch(seed, epoch), like PairSource
  M       mined pairs (the Semantic Sampler's output) matched to S's class composition (by the anchor's
          label) and count; their label precision measures the false-neighbour effect
"""

from __future__ import annotations

import hashlib
import operator
from typing import Mapping

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..mining.sampler import DUP_THRESHOLD
from ..mining.sampler import pair_precision as _pair_precision


def _gen(seed: int, *salt) -> torch.Generator:
    """A generator seeded by a hash of (seed, salt...): distinct streams per builder, stable across platforms."""
    digest = hashlib.sha256(repr((int(seed),) + salt).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _labels(labels) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.is_floating_point():
        raise ConfigError(f"labels must be a 1-D integer tensor over the dataset, got {labels.dtype} "
                          f"{tuple(labels.shape)}")
    return labels.long()


def _check_pool(pool, what: str, num_images: int | None = None) -> torch.Tensor:
    pool = torch.as_tensor(pool).long().flatten()
    if len(pool) < 2:
        raise ConfigError(f"{what}: the image pool has {len(pool)} images; at least 2 are needed")
    if len(torch.unique(pool)) != len(pool):
        raise ConfigError(f"{what}: the image pool lists some image ids more than once")
    if int(pool.min()) < 0 or (num_images is not None and int(pool.max()) >= num_images):
        raise ConfigError(f"{what}: pool ids must lie in [0, {num_images}), got [{int(pool.min())}, {int(pool.max())}]")
    return pool


def _check_count(count, what: str) -> int:
    try:
        count = operator.index(count)
    except TypeError:
        raise ConfigError(f"{what}: count must be an integer, got {count!r}") from None
    if count < 1:
        raise ConfigError(f"{what}: count must be >= 1, got {count}")
    return count


def _check_pairs(pairs, what: str, num_images: int | None = None) -> torch.Tensor:
    pairs = torch.as_tensor(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.is_floating_point():
        raise ConfigError(f"{what}: expected an [N, 2] integer tensor of image ids, got {pairs.dtype} "
                          f"{tuple(pairs.shape)}")
    pairs = pairs.long()
    if len(pairs) and (int(pairs.min()) < 0 or (num_images is not None and int(pairs.max()) >= num_images)):
        raise ConfigError(f"{what}: image ids must lie in [0, {num_images})")
    return pairs


def _spread_anchors(n: int, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` pool positions, each used floor or ceil(count / n) times: anchors are spread evenly."""
    reps = -(-count // n)
    return torch.cat([torch.randperm(n, generator=g) for _ in range(reps)])[:count]


def oracle_pairs(labels, pool, count: int, seed: int) -> torch.Tensor:
    """`count` random pairs (i, j), i != j, labels[i] == labels[j], both in the pool; anchors spread evenly."""
    labels = _labels(labels)
    pool = _check_pool(pool, "oracle pairs", len(labels))
    count = _check_count(count, "oracle pairs")
    g = _gen(seed, "oracle")
    members = pool[torch.argsort(labels[pool], stable=True)]  # the pool grouped by class
    classes, sizes = torch.unique_consecutive(labels[members], return_counts=True)
    if (sizes < 2).any():
        raise ConfigError(f"oracle pairs: classes {classes[sizes < 2].tolist()} have a single image in the pool, "
                          f"so they have no same-label partner; drop them from the pool")
    starts = torch.cumsum(sizes, 0) - sizes
    cls = torch.repeat_interleave(torch.arange(len(classes)), sizes)  # class index of each member position
    pos = _spread_anchors(len(members), count, g)
    start, size = starts[cls[pos]], sizes[cls[pos]]
    # A uniform offset in [1, size - 1] within the anchor's class never lands on the anchor itself.
    offset = (torch.rand(count, generator=g) * (size - 1)).long().clamp(max=size - 2) + 1
    partner = start + (pos - start + offset) % size
    return torch.stack([members[pos], members[partner]], 1)


def random_pairs(pool, count: int, seed: int) -> torch.Tensor:
    """`count` random pairs (i, j), i != j, from the pool: the false-pair control.

    Anchors are spread like oracle_pairs', so the two differ only in whether partners share the label.
    """
    pool = _check_pool(pool, "random pairs")
    count = _check_count(count, "random pairs")
    g = _gen(seed, "random")
    n = len(pool)
    pos = _spread_anchors(n, count, g)
    offset = torch.randint(1, n, (count,), generator=g)  # uniform over the other n - 1 images
    return torch.stack([pool[pos], pool[(pos + offset) % n]], 1)


def pair_precision(pairs: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage (0-100) of pairs whose images share the label; NaN for an empty list."""
    return _pair_precision(pairs, labels)


def class_counts(pairs: torch.Tensor, labels: torch.Tensor) -> dict[int, int]:
    """{class: number of pairs} by the anchor's (first image's) label: the class composition of a set."""
    pairs = _check_pairs(pairs, "class_counts")
    classes, counts = torch.unique(_labels(labels)[pairs[:, 0]], return_counts=True)
    return dict(zip(classes.tolist(), counts.tolist()))


def build_S(labels, pool, pairs_per_class: int, seed: int, features: torch.Tensor | None = None,
            dup_threshold: float | None = DUP_THRESHOLD, *, classes=None) -> torch.Tensor:
    """Same-class, image-disjoint pairs, `pairs_per_class` per class, near-duplicates rejected.

    `classes` restricts the set to a class subset (docs/science.md's K_c); by default every class of the pool.
    `features` [num_images, D], indexed by dataset id, come from a fixed extractor (normalised here);
    a candidate partner whose cosine with the anchor exceeds dup_threshold (None: no cut) is skipped and stays
    available to later anchors; an anchor that is a near-duplicate of every remaining image is left unpaired.
    Pairs are grouped by class in increasing class order.
    """
    labels = _labels(labels)
    pool = _check_pool(pool, "set S", len(labels))
    if isinstance(pairs_per_class, bool) or not isinstance(pairs_per_class, int) or pairs_per_class < 1:
        raise ConfigError(f"set S: pairs_per_class must be a positive integer, got {pairs_per_class!r}")
    if features is not None:
        if features.ndim != 2 or features.shape[0] < len(labels):
            raise ConfigError(f"set S: features must be [num_images={len(labels)}, D], got {tuple(features.shape)}")
    pool_y = labels[pool]
    present = torch.unique(pool_y)
    if classes is None:
        classes = present
    else:
        classes = torch.unique(torch.as_tensor(classes).long().flatten())
        missing = classes[~torch.isin(classes, present)]
        if len(missing):
            raise ConfigError(f"set S: classes {missing.tolist()} have no image in the pool")
    g = _gen(seed, "S")
    out = []
    for c in classes.tolist():
        members = pool[pool_y == c]
        if len(members) < 2 * pairs_per_class:
            raise ConfigError(f"set S: class {c} has {len(members)} images in the pool; pairs_per_class="
                              f"{pairs_per_class} needs {2 * pairs_per_class} (each image in at most one pair)")
        members = members[torch.randperm(len(members), generator=g)]
        if features is None or dup_threshold is None:  # no extractor, or the near-duplicate cut is off
            out.append(members[: 2 * pairs_per_class].view(-1, 2))
            continue
        pairs_c = _disjoint_non_duplicate_pairs(members, F.normalize(features[members].float(), dim=1),
                                                pairs_per_class, dup_threshold)
        if len(pairs_c) < pairs_per_class:
            raise ConfigError(f"set S: class {c} yields only {len(pairs_c)} disjoint non-duplicate pairs, fewer "
                              f"than pairs_per_class={pairs_per_class}; lower it or raise dup_threshold")
        out.append(torch.tensor(pairs_c, dtype=torch.long).view(-1, 2))
    return torch.cat(out)


def _disjoint_non_duplicate_pairs(members: torch.Tensor, feats: torch.Tensor, want: int, thr: float,
                                  chunk: int = 256) -> list[tuple[int, int]]:
    """Greedy in the (shuffled) member order: each anchor takes the first free image with cos <= thr.

    Candidates are scored a chunk at a time: usually the first one qualifies, so this costs ~chunk x D
    per anchor instead of the class's full n x n similarity matrix.
    """
    used = torch.zeros(len(members), dtype=torch.bool)
    pairs: list[tuple[int, int]] = []
    for a in range(len(members)):
        if len(pairs) == want:
            break
        if used[a]:
            continue
        free = torch.nonzero(~used[a + 1:]).flatten() + a + 1
        for s in range(0, len(free), chunk):
            cand = free[s:s + chunk]
            ok = torch.nonzero(feats[cand] @ feats[a] <= thr).flatten()
            if len(ok):
                b = int(cand[ok[0]])
                used[a] = used[b] = True
                pairs.append((int(members[a]), int(members[b])))
                break
    return pairs


def build_A(S: torch.Tensor) -> torch.Tensor:
    """(x_a, x_a) for the first image of each S pair: the same classes and count, N distinct images."""
    S = _check_pairs(S, "set A")
    return torch.stack([S[:, 0], S[:, 0]], 1)


class A2Sampler:
    """Control A2: N augmented pairs (x, x) per epoch drawn from the 2N images of S.

    Each epoch takes one image of every S pair, by a fair coin per pair. So every epoch has S's class
    composition and N distinct images, each of the 2N images is used half the time, and the choice is a
    pure function of (seed, epoch) (a resumed run sees the same pairs).
    """

    def __init__(self, S: torch.Tensor) -> None:
        S = _check_pairs(S, "set A2")
        if len(S) == 0:
            raise ConfigError("set A2: S is empty")
        self.S = S
        self.images = torch.unique(S.flatten())  # the 2N images A2 draws from
        self.n = len(S)

    def __len__(self) -> int:
        return self.n

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor:
        side = torch.randint(0, 2, (self.n,), generator=_gen(seed, "A2", int(epoch)))
        pick = self.S[torch.arange(self.n), side]
        return torch.stack([pick, pick], 1)


def build_A2(S: torch.Tensor) -> A2Sampler:
    return A2Sampler(S)


def _target_counts(pairs_per_class, labels: torch.Tensor, mined: torch.Tensor, classes) -> dict[int, int]:
    if isinstance(pairs_per_class, torch.Tensor) and pairs_per_class.ndim == 2:
        return class_counts(pairs_per_class, labels)  # an S set: match it exactly
    if isinstance(pairs_per_class, Mapping):
        return {int(c): int(n) for c, n in pairs_per_class.items()}
    if isinstance(pairs_per_class, bool) or not isinstance(pairs_per_class, int) or pairs_per_class < 1:
        raise ConfigError(f"set M: pairs_per_class must be a positive integer, a {{class: count}} mapping or "
                          f"the S pairs, got {pairs_per_class!r}")
    if classes is None:
        classes = torch.unique(labels[mined[:, 0]])
    return {int(c): pairs_per_class for c in torch.as_tensor(classes).flatten().tolist()}


def build_M(mined_pairs: torch.Tensor, labels, pairs_per_class, seed: int, *, classes=None) -> torch.Tensor:
    """Mined pairs with a given class composition (by the anchor's label), drawn without replacement.

    `pairs_per_class`: an int (that many per class of `classes`, by default every class that anchors a
    mined pair; pass S's classes to be sure they match), a {class: count} mapping, or S itself (its
    composition and count). A class with too few mined pairs is an error naming the fix.
    """
    labels = _labels(labels)
    mined = _check_pairs(mined_pairs, "set M", len(labels))
    if len(mined) == 0:
        raise ConfigError("set M: the mined pair list is empty; check the sampler's threshold and filters")
    target = _target_counts(pairs_per_class, labels, mined, classes)
    g = _gen(seed, "M")
    anchor_y = labels[mined[:, 0]]
    out = []
    for c in sorted(target):
        need = target[c]
        cand = mined[anchor_y == c]
        if len(cand) < need:
            raise ConfigError(f"set M: class {c} has {len(cand)} mined pairs, {need} needed; "
                              f"raise the sampler's k or lower pairs_per_class")
        out.append(cand[torch.randperm(len(cand), generator=g)[:need]])
    return torch.cat(out) if out else torch.empty(0, 2, dtype=torch.long)
