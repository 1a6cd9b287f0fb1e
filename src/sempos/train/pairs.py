"""Which (a, b) image pairs an epoch trains on, in which order.

Augmented pairs are (i, i): the two views differ only by augmentation. Extra pairs (i, j) come from a
positive source (mined, oracle, random); `add` trains on both lists shuffled together (SePP-ID variant P),
`replace` on the extra pairs alone (the semantic-pair dataset study).
The order is a pure function of (seed, epoch), so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + salt) % (2**63))


class PairSource:
    def __init__(self, base_idx: torch.Tensor, extra: torch.Tensor | None = None, mix: str = "add") -> None:
        if mix not in ("add", "replace"):
            raise ValueError(f"mix must be 'add' or 'replace', not {mix!r}")
        aug = torch.stack([base_idx, base_idx], 1).long()
        if extra is None or len(extra) == 0:
            if mix == "replace":
                raise ValueError("mix 'replace' needs a non-empty pair list")
            self.pairs = aug
        else:
            extra = extra.long().view(-1, 2)
            self.pairs = torch.cat([aug, extra]) if mix == "add" else extra

    def __len__(self) -> int:
        return len(self.pairs)

    def for_epoch(self, seed: int, epoch: int) -> torch.Tensor:
        order = torch.randperm(len(self.pairs), generator=epoch_generator(seed, epoch))
        return self.pairs[order]
