"""Exact cosine top-K mining throughput (queries/s) of sempos.mining.topk.blocked_topk.

The cost of mining N items is N x N x D multiply-adds however it is blocked, so a measurement of n
queries against all N keys gives the time for every query by scaling with N / n. The key matrix is the
real size (1.28M x D, ImageNet) whenever it fits in memory; on a small CPU the benchmark measures a
smaller key set and *extrapolates* to 1.28M keys, and every such row is labelled `estimate`.

python bench/mine.py --n 1281167 --dims 128 2048 --k 20 --queries 4096 --device cpu
Writes a CSV (--out) and prints a markdown table. Numbers belong in docs/results.md with the device.
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


def measure(n_target: int, dim: int, k: int, queries: int, dtype: torch.dtype, device: torch.device,
            max_keys: int | None, block_q: int, block_k: int, repeats: int) -> dict:
    """Time `queries` query rows against the key matrix and scale to n_target x n_target."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    n_keys = min(n_target, _mem_budget(device) // (dim * itemsize))
    if max_keys:
        n_keys = min(n_keys, max_keys)
    g = torch.Generator(device=device).manual_seed(0)
    keys = torch.randn(n_keys, dim, generator=g, device=device, dtype=torch.float32).to(dtype)
    q = min(queries, n_keys - 1)

    inv = check_rows(keys, block_q, True)

    def run_once() -> float:
        _sync(device)
        t0 = time.perf_counter()
        for qs in range(0, q, block_q):
            _, idx = query_block_topk(keys, inv, qs, min(block_q, q - qs), k, block_k, exclude_self=True)
            idx.cpu()  # blocked_topk copies each block's result to the host; so do we
        _sync(device)
        return time.perf_counter() - t0

    run_once()  # warm-up: allocator, kernels, threads
    secs = min(run_once() for _ in range(repeats))
    qps = q / secs * (n_keys / n_target)  # a query against n_target keys costs n_target / n_keys more
    total_s = n_target / qps
    return {"device": _device_name(device), "dtype": str(dtype).replace("torch.", ""), "N": n_target,
            "D": dim, "k": k, "keys_measured": n_keys, "queries_measured": q,
            "queries_per_s": round(qps, 1), "full_mine_s": round(total_s, 2),
            "kind": "measured" if n_keys == n_target else "estimate"}


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
    dtype = getattr(torch, a.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    queries = a.queries or (65536 if device.type == "cuda" else 2048)
    max_keys = a.max_keys if a.max_keys is not None else (None if device.type == "cuda" else 200_000)

    rows = [measure(a.n, d, a.k, queries, dtype, device, max_keys, a.block_q, a.block_k, a.repeats)
            for d in a.dims]

    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(a.out)
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if any(r["kind"] == "estimate" for r in rows):
        print("\n`estimate`: fewer than N keys were measured (the memory budget or --max-keys); the time is "
              "scaled by N / keys_measured (the work is N x N x D, linear in the keys), not measured at full size.")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
