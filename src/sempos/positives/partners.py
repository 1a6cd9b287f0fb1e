"""Fast membership tests for a pair list: which (image a, image b) combinations are known partners."""

from __future__ import annotations

import torch


class PartnerIndex:
    """Symmetric set of SPPS pairs, encoded as sorted int64 keys a * n + b for searchsorted lookups."""

    def __init__(self, pairs: torch.Tensor, num_images: int, device="cpu") -> None:
        pairs = pairs.long().view(-1, 2)
        both = torch.cat([pairs, pairs.flip(1)])
        both = both[both[:, 0] != both[:, 1]]
        self.n = int(num_images)
        self.keys = torch.unique(both[:, 0] * self.n + both[:, 1]).to(device)

    def to(self, device) -> "PartnerIndex":
        self.keys = self.keys.to(device)
        return self

    def lookup(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """[len(a), len(b)] bool: True where (a_i, b_j) is a known pair. Negative ids are never partners."""
        code = a.view(-1, 1).long() * self.n + b.view(1, -1).long()
        if len(self.keys) == 0:
            return torch.zeros(code.shape, dtype=torch.bool, device=code.device)
        pos = torch.searchsorted(self.keys, code.flatten()).clamp(max=len(self.keys) - 1)
        hit = (self.keys[pos] == code.flatten()).view(code.shape)
        return hit & (a.view(-1, 1) >= 0) & (b.view(1, -1) >= 0)
