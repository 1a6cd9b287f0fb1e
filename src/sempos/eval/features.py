"""Frozen-backbone features: eval mode, no augmentation, batched, L2-normalised on request."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..augment import Normalizer, eval_batch
from ..progress import bar


@torch.no_grad()
def extract(backbone: torch.nn.Module, images_u8: torch.Tensor, norm: Normalizer, device,
            batch_size: int = 1024, out_size: int | None = None, normalize: bool = True,
            desc: str = "features") -> torch.Tensor:
    was_training = backbone.training
    backbone.eval()
    feats = []
    try:
        for start in bar(range(0, len(images_u8), batch_size), desc=desc, unit="batch"):
            x = eval_batch(images_u8[start:start + batch_size].to(device, non_blocking=True), norm, out_size)
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
    raise ValueError(f"cannot feed {x.shape[1]}-channel images to a {channels}-channel backbone")
