"""ViT-S/16 (SNCLR's main backbone) from torchvision's VisionTransformer, for any channel count and size.

`frozen_patch_embed` is MoCo-v3's stability trick: a random, fixed patch projection (stop-gradient).
At 28/32 px use patch 4; at 224 px the standard patch 16.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer


class ViT(nn.Module):
    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, hidden_dim: int = 384,
                 depth: int = 12, heads: int = 6, mlp_ratio: int = 4, frozen_patch_embed: bool = False) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of patch size {patch_size}")
        self.vit = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=depth,
                                     num_heads=heads, hidden_dim=hidden_dim, mlp_dim=mlp_ratio * hidden_dim)
        self.vit.heads = nn.Identity()
        if in_channels != 3:
            self.vit.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, patch_size)
        if frozen_patch_embed:
            for p in self.vit.conv_proj.parameters():
                p.requires_grad_(False)
        self.feat_dim = hidden_dim
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)  # the class token after the final LayerNorm


def vit_small(image_size: int, in_channels: int, patch_size: int | None = None, frozen_patch_embed: bool = False) -> ViT:
    patch = patch_size or (16 if image_size >= 96 else 4)
    return ViT(image_size, patch, in_channels, 384, 12, 6, 4, frozen_patch_embed)
