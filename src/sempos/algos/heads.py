"""Projection / prediction MLPs."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, *, layers: int, last_bn: bool = False) -> nn.Sequential:
    """`layers` linear layers with BN+ReLU between them; optional affine-free BN on the output.

    `layers` has no default: the papers' heads differ in depth (2 or 3), so each call states its own."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        mods.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*mods)
