"""Which (a, b) image pairs an epoch trains on, in which order.

Augmented pairs are (i, i): the two views differ only by augmentation. Extra pairs (i, j) come from a
positive source (mined, oracle, random, or a study set); `add` trains on both lists shuffled together
(SePP-ID variant P), `replace` on the extra pairs alone (the semantic-pair dataset study).
`equal_steps` keeps the host's step count: each epoch draws len(base) pairs from the combined list.
An epoch-dependent source (the study's A2 sampler) supplies a fresh pair list every epoch.
The order is a pure function of (seed, epoch), so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

from typing import Protocol

import torch


class EpochPairs(Protocol):
    def __len__(self) -> int: ...

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor: ...


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + salt) % (2**63))


class PairSource:
    def __init__(self, base_idx: torch.Tensor, extra: torch.Tensor | None = None, mix: str = "add",
                 equal_steps: bool = False, epoch_extra: EpochPairs | None = None) -> None:
        if mix not in ("add", "replace"):
            raise ValueError(f"mix must be 'add' or 'replace', not {mix!r}")
        self.base_len = len(base_idx)
        self.equal_steps = equal_steps
        self.epoch_extra = epoch_extra
        aug = torch.stack([base_idx, base_idx], 1).long()
        extra = None if extra is None else extra.long().view(-1, 2)
        has_extra = (extra is not None and len(extra) > 0) or epoch_extra is not None
        if mix == "replace" and not has_extra:
            raise ValueError("mix 'replace' needs a non-empty pair list")
        parts = [] if mix == "replace" else [aug]
        if extra is not None and len(extra):
            parts.append(extra)
        self.fixed = torch.cat(parts) if parts else torch.empty(0, 2, dtype=torch.long)

    def _all(self, seed: int, epoch: int) -> torch.Tensor:
        if self.epoch_extra is None:
            return self.fixed
        return torch.cat([self.fixed, self.epoch_extra.for_epoch(seed, epoch).long()])

    def __len__(self) -> int:
        if self.equal_steps:
            return self.base_len
        return len(self.fixed) + (len(self.epoch_extra) if self.epoch_extra is not None else 0)

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor:
        pairs = self._all(seed, epoch)
        order = torch.randperm(len(pairs), generator=epoch_generator(seed, epoch))
        if self.equal_steps:
            if len(pairs) < self.base_len:
                # Fewer pairs than the host's images: cycle through further permutations.
                reps = -(-self.base_len // len(pairs))
                order = torch.cat([order] + [torch.randperm(len(pairs), generator=epoch_generator(seed, epoch, r))
                                             for r in range(1, reps)])
            order = order[: self.base_len]
        return pairs[order]
