"""The pretrain stage's backbone.pt: what it records and how evaluation, mining and detection load it.

Kept apart from the trainer so that readers of a checkpoint do not import every algorithm.
"""

from __future__ import annotations

from pathlib import Path

from ..augment import Normalizer
from ..io import load_torch
from .resnet import build_backbone

META_ARCH_KEYS = ("arch", "width", "in_channels", "image_size", "patch_size", "frozen_patch_embed")


def backbone_kwargs(bb: dict, in_channels: int, image_size: int) -> dict:
    """build_backbone's arguments from params' `backbone` section and the data's channels and size."""
    return {"arch": bb["arch"], "width": bb.get("width", 64), "in_channels": in_channels, "image_size": image_size,
            "patch_size": bb.get("patch_size"), "frozen_patch_embed": bb.get("frozen_patch_embed", False)}


def load_backbone(path: Path, device="cpu"):
    """(backbone in eval mode, Normalizer, meta) from a pretrain stage's backbone.pt."""
    blob = load_torch(path)
    meta = blob["meta"]
    bb = build_backbone(**{k: meta[k] for k in META_ARCH_KEYS if k in meta})
    bb.load_state_dict(blob["state_dict"])
    bb.to(device).eval()
    return bb, Normalizer(meta["norm_mean"], meta["norm_std"], device), meta
