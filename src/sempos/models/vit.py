"""ViT-S/16 as SNCLR and MoCo-v3 build it, on torchvision's VisionTransformer, for any channel count and size.

What differs from torchvision's defaults, after moco-v3's / SNCLR's `vits.py`:
  * 12 heads (DeiT-S has 6); width 384, depth 12, MLP ratio 4;
  * a fixed 2-D sin-cos position embedding (zero at the class token), not a learnt one;
  * Xavier-uniform initialisation, with q, k and v initialised as three separate layers;
  * `frozen_patch_embed`: MoCo-v3's stability trick, a random patch projection that is never trained.
At 28/32 px use patch 4; at 224 px the standard patch 16.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from ..errors import InvalidValueError


def sincos_2d(grid: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """[grid*grid, dim] position code of a row-major patch grid: sin/cos of the column, then of the row."""
    if dim % 4:
        raise InvalidValueError(f"the 2-D sin-cos position embedding needs a width divisible by 4, not {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")
    c = cols.flatten()[:, None] * omega[None]
    r = rows.flatten()[:, None] * omega[None]
    return torch.cat([c.sin(), c.cos(), r.sin(), r.cos()], dim=1)


class ViT(nn.Module):
    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, hidden_dim: int = 384,
                 depth: int = 12, heads: int = 12, mlp_ratio: int = 4, frozen_patch_embed: bool = False) -> None:
        super().__init__()
        if image_size % patch_size:
            raise InvalidValueError(f"vit_small: the image size {image_size} (the dataset's, or data.image_size) is not a "
                                    f"multiple of backbone.patch_size {patch_size}; choose sizes that divide")
        self.vit = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=depth,
                                     num_heads=heads, hidden_dim=hidden_dim, mlp_dim=mlp_ratio * hidden_dim)
        self.vit.heads = nn.Identity()
        if in_channels != 3:
            self.vit.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, patch_size)
        self._init_weights(in_channels * patch_size * patch_size, hidden_dim)
        pos = torch.cat([torch.zeros(1, hidden_dim), sincos_2d(image_size // patch_size, hidden_dim)])
        # Kept a (frozen) parameter so the state-dict layout matches torchvision's.
        self.vit.encoder.pos_embedding = nn.Parameter(pos[None], requires_grad=False)
        if frozen_patch_embed:
            for p in self.vit.conv_proj.parameters():
                p.requires_grad_(False)
        self.feat_dim = hidden_dim
        self.in_channels = in_channels

    def _init_weights(self, patch_fan_in: int, hidden_dim: int) -> None:
        for m in self.vit.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                # The packed [3D, D] in-projection is q, k and v; Xavier over the packed shape would
                # shrink each of them, so the bound is that of one D x D layer.
                bound = math.sqrt(6.0 / (2 * m.embed_dim))
                nn.init.uniform_(m.in_proj_weight, -bound, bound)
                nn.init.zeros_(m.in_proj_bias)
        nn.init.normal_(self.vit.class_token, std=1e-6)
        # Xavier for the patch projection seen as a linear map of the flattened patch; with
        # frozen_patch_embed this random projection is what the network keeps.
        bound = math.sqrt(6.0 / (patch_fan_in + hidden_dim))
        nn.init.uniform_(self.vit.conv_proj.weight, -bound, bound)
        nn.init.zeros_(self.vit.conv_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)  # the class token after the final LayerNorm


def vit_small(image_size: int, in_channels: int, patch_size: int | None = None, frozen_patch_embed: bool = False,
              heads: int = 12) -> ViT:
    patch = patch_size or (16 if image_size >= 96 else 4)
    return ViT(image_size, patch, in_channels, hidden_dim=384, depth=12, heads=heads, mlp_ratio=4,
               frozen_patch_embed=frozen_patch_embed)
