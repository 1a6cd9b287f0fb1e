"""The Semantic Sampler of SePP-ID: mine semantic positive pairs with a pretrained backbone.

  topk      exact blocked cosine top-K (CPU/CUDA, never N x N)
  sampler   SPPS from top-K (k, threshold, mutual, symmetrize, near-duplicates), diagnostics, mine(),
            pair files (i, j, cos)

What the pretraining run does with mined pairs lives in `sempos.positives`.
Names are re-exported lazily so that importing the package does not import torch-heavy submodules.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "blocked_topk": "topk", "cosine_topk": "topk",
    "SamplerConfig": "sampler", "spps_from_topk": "sampler", "diagnostics": "sampler", "mine": "sampler",
    "write_pairs": "sampler", "read_pairs": "sampler", "pair_precision": "sampler",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
