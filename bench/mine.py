"""Exact cosine top-K mining throughput (queries/s) of sempos.mining.topk.blocked_topk.

The cost of mining N items is N x N x D multiply-adds however it is blocked, so a measurement of n
queries against all N keys gives the time for every query by scaling with N / n. The key matrix is the
real size (1.28M x D, ImageNet) whenever it fits in memory; on a small CPU the benchmark measures a
smaller key set and *extrapolates* to 1.28M keys, and every such row is labelled `estimate`.

python bench/mine.py --n 1281167 --dims 128 2048 --k 20 --queries 4096 --device cpu
python bench/mine.py --dims 2048 --dtypes bfloat16 float16 --faiss      # one GPU: torch and faiss side by side
Writes a CSV (--out, rewritten after every row) and prints a markdown table. Numbers belong in
docs/results.md with the device.

--faiss adds exact search with faiss's IndexFlatIP on the same keys (GpuIndexFlatIP on a GPU, fp32 and,
for half --dtypes, its fp16 storage), timed and scaled the same way; a row says why when faiss (or its
GPU build) is not installed. `--queries 0` times every query (no scaling over queries).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sempos.mining.topk import check_rows, query_block_topk  # noqa: E402

IMAGENET_TRAIN = 1_281_167


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _mem_budget(device: torch.device) -> int:
    """Bytes we allow the key matrix to take: half of free GPU memory, a quarter of host RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def _random_keys(n_keys: int, dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(0)
    keys = torch.empty(n_keys, dim, device=device, dtype=dtype)
    for s in range(0, n_keys, 65536):  # in chunks: no fp32 copy of a half-precision matrix
        rows = min(65536, n_keys - s)
        keys[s:s + rows] = torch.randn(rows, dim, generator=g, device=device, dtype=torch.float32).to(dtype)
    return keys


def _n_keys(n_target: int, dim: int, itemsize: int, device: torch.device, max_keys: int | None) -> int:
    n_keys = min(n_target, _mem_budget(device) // (dim * itemsize))
    return min(n_keys, max_keys) if max_keys else n_keys


def _row(method: str, device, dtype: str, n_target, dim, k, n_keys, q, secs) -> dict:
    qps = q / secs * (n_keys / n_target)  # a query against n_target keys costs n_target / n_keys more
    return {"method": method, "device": _device_name(device), "dtype": dtype, "N": n_target, "D": dim, "k": k,
            "keys_measured": n_keys, "queries_measured": q, "queries_per_s": round(qps, 1),
            "full_mine_s": round(n_target / qps, 2), "kind": "measured" if n_keys == n_target else "estimate",
            "status": "ok"}


def measure(n_target: int, dim: int, k: int, queries: int, dtype: torch.dtype, device: torch.device,
            max_keys: int | None, block_q: int, block_k: int, repeats: int) -> dict:
    """Time `queries` query rows (0: all) against the key matrix and scale to n_target x n_target."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    n_keys = _n_keys(n_target, dim, itemsize, device, max_keys)
    keys = _random_keys(n_keys, dim, dtype, device)
    q = n_keys if queries <= 0 else min(queries, n_keys - 1)

    inv = check_rows(keys, block_q, True)

    def run_once(limit: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for qs in range(0, limit, block_q):
            _, idx = query_block_topk(keys, inv, qs, min(block_q, limit - qs), k, block_k, exclude_self=True)
            idx.cpu()  # blocked_topk copies each block's result to the host; so do we
        _sync(device)
        return time.perf_counter() - t0

    run_once(min(q, block_q))  # warm-up (allocator, kernels, threads): one query block
    secs = min(run_once(q) for _ in range(repeats))
    return _row("torch matmul+topk", device, str(dtype).replace("torch.", ""), n_target, dim, k, n_keys, q, secs)


def measure_faiss(n_target: int, dim: int, k: int, queries: int, fp16: bool, device: torch.device,
                  max_keys: int | None, block_q: int, repeats: int) -> dict:
    """Exact inner-product search of normalised keys with faiss's flat index (GPU index on a GPU)."""
    import faiss

    n_keys = _n_keys(n_target, dim, 2 if fp16 else 4, device, max_keys)
    keys = torch.nn.functional.normalize(_random_keys(n_keys, dim, torch.float32, device), dim=1)
    q = n_keys if queries <= 0 else min(queries, n_keys - 1)
    if device.type == "cuda":
        if not hasattr(faiss, "StandardGpuResources"):
            raise RuntimeError("this faiss has no GPU support (faiss-cpu); install faiss-gpu")
        import faiss.contrib.torch_utils  # noqa: F401  (faiss then takes torch tensors, device pointers too)

        res = faiss.StandardGpuResources()
        cfg = faiss.GpuIndexFlatConfig()
        cfg.device = device.index or 0
        cfg.useFloat16 = fp16
        index = faiss.GpuIndexFlatIP(res, dim, cfg)
        index.add(keys)
        qsrc = keys
    else:
        if fp16:
            raise RuntimeError("faiss's fp16 flat storage is a GPU feature")
        index = faiss.IndexFlatIP(dim)
        qsrc = keys.numpy()
        index.add(qsrc)

    def run_once(limit: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for qs in range(0, limit, block_q):
            _, idx = index.search(qsrc[qs:min(limit, qs + block_q)], k + 1)  # +1: each query finds itself
            if isinstance(idx, torch.Tensor):
                idx.cpu()
        _sync(device)
        return time.perf_counter() - t0

    run_once(min(q, block_q))
    secs = min(run_once(q) for _ in range(repeats))
    return _row(f"faiss {'Gpu' if device.type == 'cuda' else ''}IndexFlatIP", device, "float16" if fp16 else "float32",
                n_target, dim, k, n_keys, q, secs)


def _failed_row(method: str, device, dtype: str, n_target, dim, k, status: str) -> dict:
    return {"method": method, "device": _device_name(device), "dtype": dtype, "N": n_target, "D": dim, "k": k,
            "keys_measured": "", "queries_measured": "", "queries_per_s": "", "full_mine_s": "", "kind": "",
            "status": status}


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:200] if msg else ''}"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=IMAGENET_TRAIN, help="items to mine (default: ImageNet train)")
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 2048])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None,
                    help="query rows timed (default 2048 on CPU, 65536 on GPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on GPU, fp32 on CPU)")
    ap.add_argument("--dtypes", nargs="+", default=None, help="several of those, one row each (overrides --dtype)")
    ap.add_argument("--faiss", action="store_true", help="also time faiss's exact flat index on the same keys")
    ap.add_argument("--max-keys", type=int, default=None,
                    help="cap the key matrix (CPU default 200000, so a laptop run takes a minute)")
    ap.add_argument("--block-q", type=int, default=4096)
    ap.add_argument("--block-k", type=int, default=65536)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/bench/mine.csv"))
    a = ap.parse_args(argv)

    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/mine.py: --device cuda but no CUDA device is available; use --device cpu")
    names = a.dtypes or [a.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    dtypes = [getattr(torch, n) for n in names]
    queries = a.queries if a.queries is not None else (65536 if device.type == "cuda" else 2048)
    max_keys = a.max_keys if a.max_keys is not None else (None if device.type == "cuda" else 200_000)

    rows: list[dict] = []
    for d in a.dims:
        for dtype in dtypes:
            rows.append(measure(a.n, d, a.k, queries, dtype, device, max_keys, a.block_q, a.block_k, a.repeats))
            _write(rows, a.out)
            _free(device)
        if a.faiss:
            for fp16 in sorted({dt in (torch.float16, torch.bfloat16) and device.type == "cuda" for dt in dtypes}):
                method = "faiss IndexFlatIP"
                try:
                    rows.append(measure_faiss(a.n, d, a.k, queries, fp16, device, max_keys, a.block_q, a.repeats))
                except ImportError:
                    rows.append(_failed_row(method, device, "float16" if fp16 else "float32", a.n, d, a.k,
                                            "skipped: faiss not installed"))
                except Exception as exc:  # a faiss failure must not lose the torch rows
                    rows.append(_failed_row(method, device, "float16" if fp16 else "float32", a.n, d, a.k,
                                            "error: " + _one_line(exc)))
                _write(rows, a.out)
                _free(device)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if any(r["kind"] == "estimate" for r in rows):
        print("\n`estimate`: fewer than N keys were measured (the memory budget or --max-keys); the time is "
              "scaled by N / keys_measured (the work is N x N x D, linear in the keys), not measured at full size.")
    print(f"wrote {a.out}")


def _write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out)


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
