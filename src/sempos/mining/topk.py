"""Exact cosine top-K of every row against all rows, in blocks: memory O(block_q x block_k + N x K).

The N x N similarity matrix is never materialised. A block of block_q queries is multiplied with one
block of block_k keys at a time, and each query keeps a running top-K that is merged with the block's
own top-K. So the same code mines ImageNet (1.28M x 2048 in fp16/bf16, 5 GB) on one GPU and a few
thousand items on a laptop CPU. The result is exact; there is no approximate index.
"""

from __future__ import annotations

import math
import operator

import torch

from ..errors import InvalidValueError
from ..progress import bar

HALF = (torch.float16, torch.bfloat16)
_MM_OUT_DTYPE = True  # whether torch.mm(..., out_dtype=float32) works here (CUDA, torch >= 2.8)


def _device_of(emb: torch.Tensor, device) -> torch.device:
    dev = torch.device(device) if device is not None else emb.device
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError("top-K was asked to run on CUDA, but no CUDA device is available; set "
                                 "runtime.device: cpu (or auto)")
    return dev


def check_rows(emb: torch.Tensor, chunk: int, normalize: bool) -> torch.Tensor | None:
    """One chunked pass over the rows: reject NaN/inf, and return 1 / ||row|| (float32) when normalising.

    Chunked so that neither the finite check (a bool N x D mask) nor an fp32 copy of a half-precision
    matrix is ever materialised whole. A zero row gets a huge factor times a zero dot product, i.e.
    cosine 0 with everything (as F.normalize gives).
    """
    inv = torch.empty(emb.shape[0], dtype=torch.float32, device=emb.device) if normalize else None
    for s in range(0, emb.shape[0], chunk):
        rows = emb[s:s + chunk]
        if not bool(torch.isfinite(rows).all()):
            raise InvalidValueError("embeddings contain NaN or inf (a diverged sampler backbone?); cannot rank "
                                     "neighbours: check the sampler's history.csv and retrain it (lower pretrain.lr)")
        if inv is not None:
            inv[s:s + chunk] = rows.float().norm(dim=1).clamp_min(1e-12).reciprocal()
    return inv


def _block_sims(q: torch.Tensor, kb: torch.Tensor) -> torch.Tensor:
    """q @ kb.T as a float32 [bq, bk] block.

    Half inputs accumulate in fp32 inside the GEMM anyway, but a bf16 *output* keeps 8 mantissa bits
    (steps of 0.004 near cos 1), enough to reorder close neighbours. So the block is returned in fp32:
    on CUDA by the GEMM's fp32 output, elsewhere by multiplying in fp32.
    """
    global _MM_OUT_DTYPE
    if q.dtype in HALF:
        if q.is_cuda and _MM_OUT_DTYPE:
            try:
                return torch.mm(q, kb.t(), out_dtype=torch.float32)
            except torch.OutOfMemoryError:
                raise
            except (TypeError, RuntimeError):  # older torch: no out_dtype; upcast the blocks from now on
                _MM_OUT_DTYPE = False
        return q.float() @ kb.float().t()
    return (q @ kb.t()).float()


def blocked_topk(emb: torch.Tensor, k: int, block_q: int = 4096, block_k: int = 65536,
                 exclude_self: bool = True, device: str | torch.device | None = None,
                 normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(sims [N, k] float32, idx [N, k] int64), on the CPU: each row's k most cosine-similar rows.

    Rows are sorted by decreasing similarity. With `exclude_self` a row is never its own neighbour
    (by position: an exact duplicate elsewhere in the matrix is a neighbour, at cosine 1).
    `normalize` divides by the row norms (float32), so the input need not be L2-normalised; pass False
    to rank by raw dot product. `emb` may be fp32/fp64/fp16/bf16 on any device. It is moved to `device`
    once, not block by block: re-sending every key block for each query block would cost N / block_q
    full copies over PCIe.
    Ties between equal similarities are broken arbitrarily (as torch.topk does).
    """
    if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
        raise InvalidValueError(f"embeddings must be a non-empty [N, D] tensor, got {shape}")
    if not emb.is_floating_point():
        raise InvalidValueError(f"embeddings must be floating point, got {emb.dtype}")
    n = emb.shape[0]
    limit = n - 1 if exclude_self else n
    try:
        k = operator.index(k)  # ints from numpy/YAML are fine; 2.5 or "5" are not
    except TypeError:
        raise InvalidValueError(f"k must be an integer, got {k!r}") from None
    if not 1 <= k <= limit:
        raise InvalidValueError(f"k={k} must be between 1 and {limit} for {n} items"
                         + (" (an item is not its own neighbour, so k < N)" if exclude_self else ""))
    if block_q < 1 or block_k < 1:
        raise InvalidValueError(f"block sizes must be positive, got block_q={block_q}, block_k={block_k}")
    with torch.no_grad():
        dev = _device_of(emb, device)
        emb = emb.to(dev)
        inv = check_rows(emb, block_q, normalize)

        out_s = torch.empty(n, k, dtype=torch.float32)
        out_i = torch.empty(n, k, dtype=torch.long)
        for qs in bar(range(0, n, block_q), desc="top-K", unit="block"):
            best_s, best_i = query_block_topk(emb, inv, qs, min(block_q, n - qs), k, block_k, exclude_self)
            out_s[qs:qs + block_q] = best_s.cpu()
            out_i[qs:qs + block_q] = best_i.cpu()
        return out_s, out_i


def query_block_topk(emb: torch.Tensor, inv: torch.Tensor | None, qs: int, bq: int, k: int, block_k: int,
                     exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of rows qs..qs+bq against every row of emb, streaming over key blocks (on emb's device).

    One call is exactly one query block's share of blocked_topk; bench/mine.py times it on its own
    to extrapolate the full mining cost, which is linear in the number of query blocks.
    """
    dev = emb.device
    q = emb[qs:qs + bq]
    rows = torch.arange(bq, device=dev)
    best_s = torch.full((bq, k), -math.inf, device=dev)
    best_i = torch.full((bq, k), -1, dtype=torch.long, device=dev)
    for ks in range(0, emb.shape[0], block_k):
        kb = emb[ks:ks + block_k]
        sim = _block_sims(q, kb)
        if inv is not None:
            sim.mul_(inv[qs:qs + bq, None]).mul_(inv[None, ks:ks + kb.shape[0]])
        if exclude_self and ks < qs + bq and qs < ks + kb.shape[0]:
            # The diagonal of the full matrix crosses this block: hide each query's own column.
            own = rows + qs - ks
            inside = (own >= 0) & (own < kb.shape[0])
            sim[rows[inside], own[inside]] = -math.inf
        # Running merge: the block's own top-k, then the top-k of (best so far, block's best).
        s, i = sim.topk(min(k, sim.shape[1]), dim=1)
        del sim
        best_s, pos = torch.cat([best_s, s], 1).topk(k, dim=1)
        best_i = torch.cat([best_i, i + ks], 1).gather(1, pos)
    return best_s, best_i


# The name the issue uses; blocked_topk is what the sampler and older callers import.
cosine_topk = blocked_topk
