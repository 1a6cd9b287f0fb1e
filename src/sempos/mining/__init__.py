"""The Semantic Sampler (SePP-ID) and the pair sets of the semantic-pair dataset study.

  topk      exact blocked cosine top-K (CPU/CUDA, never N x N)
  sampler   SPPS from top-K (k, threshold, mutual, symmetrize, near-duplicates), diagnostics, mine(),
            pair files (i, j, cos)
  pairsets  oracle / random positive sources; study sets S, A, A2, M
  partners  membership tests on a pair list (variant M positives, masking partners as negatives)

Names are re-exported lazily: the submodules import eval/train code, which itself imports this package.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "blocked_topk": "topk", "cosine_topk": "topk",
    "SamplerConfig": "sampler", "spps_from_topk": "sampler", "diagnostics": "sampler", "mine": "sampler",
    "write_pairs": "sampler", "read_pairs": "sampler", "pair_precision": "sampler",
    "oracle_pairs": "pairsets", "random_pairs": "pairsets", "build_S": "pairsets", "build_A": "pairsets",
    "build_A2": "pairsets", "A2Sampler": "pairsets", "build_M": "pairsets", "class_counts": "pairsets",
    "PartnerIndex": "partners",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
