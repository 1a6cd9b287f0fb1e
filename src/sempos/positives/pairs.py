"""Which (a, b) image pairs an epoch trains on, in which order.

Augmented pairs are (i, i): the two views differ only by augmentation. Extra pairs (i, j) come from a
positive source (mined, oracle, random, or a study set); `add` trains on both lists shuffled together
(SePP-ID variant P), `replace` on the extra pairs alone (the semantic-pair dataset study).
`equal_steps` keeps the host's step count (docs/science.md §1.2, compute parity): each epoch draws exactly
len(base_idx) pairs from the combined list, without replacement while the list is long enough. With
|SPPS| = |D| (K = 1) that is half of the augmented pairs per epoch, plus as many semantic pairs.
`pairs_per_epoch` generalises it to any count: the compute-matched host of a variant that trains on
|D| + |SPPS| pairs per epoch is the augmented list cycled (fresh permutations) to that count.
An epoch-dependent source (the study's A2 sampler: anything with __len__ and for_epoch(seed, epoch))
supplies a fresh pair list every epoch, appended to the fixed extra pairs.
The order is a pure function of (seed, epoch), so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import torch

from ..errors import InvalidValueError


@runtime_checkable
class EpochPairs(Protocol):
    def __len__(self) -> int: ...

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor: ...


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + salt) % (2**63))


def _as_pairs(pairs, what: str) -> torch.Tensor:
    pairs = torch.as_tensor(pairs)
    if pairs.is_floating_point() or pairs.ndim != 2 or pairs.shape[1] != 2:
        raise InvalidValueError(f"{what} must be an [M, 2] integer tensor of image ids, got {pairs.dtype} "
                         f"{tuple(pairs.shape)}")
    return pairs.long()


class PairSource:
    """The pair list of a pretraining run: base_idx's augmented pairs, plus or instead of extra pairs.

    base_idx     the pretraining images (1-D ids); defines the augmented pairs and the host's step count
    extra        a fixed [M, 2] pair list, or None
    mix          'add' (augmented + extra, one shuffled list) or 'replace' (extra pairs only)
    equal_steps  every epoch trains on exactly len(base_idx) pairs drawn from the combined list
    epoch_extra  an epoch-dependent pair source (e.g. positives.pairsets.A2Sampler), joined to `extra`
    pairs_per_epoch  every epoch trains on exactly this many pairs drawn from the combined list (cycling
                 through fresh permutations when it is longer than the list); excludes equal_steps
    """

    def __init__(self, base_idx: torch.Tensor, extra: torch.Tensor | None = None, mix: str = "add",
                 equal_steps: bool = False, epoch_extra: EpochPairs | None = None,
                 pairs_per_epoch: int | None = None) -> None:
        if mix not in ("add", "replace"):
            raise InvalidValueError(f"mix must be 'add' or 'replace', not {mix!r}")
        base_idx = torch.as_tensor(base_idx)
        if base_idx.ndim != 1 or base_idx.is_floating_point():
            raise InvalidValueError(f"base_idx must be a 1-D integer tensor of image ids, got {base_idx.dtype} "
                             f"{tuple(base_idx.shape)}")
        if epoch_extra is not None and not isinstance(epoch_extra, EpochPairs):
            raise TypeError(f"epoch_extra needs __len__ and for_epoch(seed, epoch), got {type(epoch_extra).__name__}")
        self.base_len = len(base_idx)
        self.equal_steps = bool(equal_steps)
        self.epoch_extra = epoch_extra
        if self.equal_steps and self.base_len == 0:
            raise InvalidValueError("equal_steps needs a non-empty base_idx: it sets the number of pairs per epoch")
        if pairs_per_epoch is not None:
            if self.equal_steps:
                raise InvalidValueError("pass equal_steps or pairs_per_epoch, not both (equal_steps is "
                                 "pairs_per_epoch=len(base_idx))")
            if isinstance(pairs_per_epoch, bool) or int(pairs_per_epoch) != pairs_per_epoch or pairs_per_epoch < 1:
                raise InvalidValueError(f"pairs_per_epoch must be a positive integer, got {pairs_per_epoch!r}")
        # The fixed number of pairs each epoch draws from the combined list (None: the whole list once).
        self.drawn = self.base_len if self.equal_steps else (None if pairs_per_epoch is None else int(pairs_per_epoch))
        aug = torch.stack([base_idx, base_idx], 1).long()
        extra = None if extra is None else _as_pairs(extra, "extra")
        has_extra = (extra is not None and len(extra) > 0) or (epoch_extra is not None and len(epoch_extra) > 0)
        if mix == "replace" and not has_extra:
            raise InvalidValueError("mix 'replace' needs a non-empty pair list")
        parts = [] if mix == "replace" else [aug]
        if extra is not None and len(extra):
            parts.append(extra)
        self.fixed = torch.cat(parts) if parts else torch.empty(0, 2, dtype=torch.long)
        if len(self.fixed) + (len(epoch_extra) if epoch_extra is not None else 0) == 0:
            raise InvalidValueError("the pair list is empty: no pretraining images and no extra pairs")

    def _all(self, seed: int, epoch: int) -> torch.Tensor:
        if self.epoch_extra is None:
            return self.fixed
        fresh = _as_pairs(self.epoch_extra.for_epoch(seed, epoch), "epoch_extra.for_epoch(...)")
        if len(fresh) != len(self.epoch_extra):
            # The trainer sizes an epoch from len(self); a source that changes size would desynchronise it.
            raise InvalidValueError(f"epoch_extra gave {len(fresh)} pairs for epoch {epoch} but reports "
                             f"len() = {len(self.epoch_extra)}")
        return torch.cat([self.fixed, fresh])

    def content_digest(self) -> str:
        """sha256 of what the pair list is: the fixed pairs, how many an epoch draws, the epoch source's kind
        and size. A checkpoint is resumed only by a run with the same digest (same settings can still mean
        other pairs: a re-mined pair file)."""
        h = hashlib.sha256(self.fixed.numpy().astype("int64").tobytes())
        extra = (type(self.epoch_extra).__name__, len(self.epoch_extra)) if self.epoch_extra is not None else None
        h.update(repr((self.drawn, self.equal_steps, extra)).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        if self.drawn is not None:
            return self.drawn
        return len(self.fixed) + (len(self.epoch_extra) if self.epoch_extra is not None else 0)

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor:
        """The epoch's [len(self), 2] pairs in training order; a pure function of (seed, epoch)."""
        pairs = self._all(seed, epoch)
        order = torch.randperm(len(pairs), generator=epoch_generator(seed, epoch))
        if self.drawn is not None:
            if len(pairs) < self.drawn:
                # Fewer pairs than the epoch draws: cycle through further permutations, so every pair is
                # used floor or ceil(drawn / len) times.
                reps = -(-self.drawn // len(pairs))
                order = torch.cat([order] + [torch.randperm(len(pairs), generator=epoch_generator(seed, epoch, r))
                                             for r in range(1, reps)])
            order = order[: self.drawn]
        return pairs[order]
