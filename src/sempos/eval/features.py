"""Frozen-backbone features: eval mode, no augmentation, batched, L2-normalised on request.

Images are a uint8 tensor or encoded images (sempos.data.shards.ShardImages), which are decoded in batches
with the test-time transform (shorter side to eval_resize, central crop; ImageNet: 256 / 224).
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from ..augment import Normalizer, eval_batch
from ..data.shards import is_encoded
from ..errors import InvalidValueError
from ..progress import bar


def eval_views(images, batch_size: int, device) -> Iterator[torch.Tensor]:
    """Un-augmented uint8 batches on `device`, in order: slices of a tensor, or decoded test-time crops."""
    if is_encoded(images):
        from ..data.loader import eval_batches

        yield from eval_batches(images, batch_size, device)
        return
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size].to(device, non_blocking=True)


@torch.no_grad()
def extract(backbone: torch.nn.Module, images_u8, norm: Normalizer, device,
            batch_size: int = 1024, out_size: int | None = None, normalize: bool = True,
            desc: str = "features") -> torch.Tensor:
    was_training = backbone.training
    backbone.eval()
    feats = []
    try:
        batches = eval_views(images_u8, batch_size, device)
        for batch in bar(batches, total=-(-len(images_u8) // batch_size), desc=desc, unit="batch"):
            x = eval_batch(batch, norm, out_size)
            if x.shape[1] != _in_channels(backbone):
                x = _match_channels(x, _in_channels(backbone))
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                                enabled=torch.device(device).type == "cuda"):
                f = backbone(x)
            feats.append(f.float())
    finally:
        backbone.train(was_training)
    out = torch.cat(feats) if feats else torch.empty(0)
    return F.normalize(out, dim=1) if normalize else out


def _in_channels(backbone: torch.nn.Module) -> int:
    return getattr(backbone, "in_channels", 3)


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale targets into an RGB backbone (repeat), RGB targets into a grayscale one (luma)."""
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise InvalidValueError(f"cannot feed {x.shape[1]}-channel images to a {channels}-channel backbone")
