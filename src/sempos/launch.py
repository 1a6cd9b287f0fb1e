"""Give a job its own GPUs and start it with torchrun when it has more than one.

Snakemake only *counts* `gpu` resources; it does not say which devices a local job may use. This wrapper
takes N device ids from the pool (CUDA_VISIBLE_DEVICES, or every visible device) under file locks, so
concurrent jobs never share a GPU, sets CUDA_VISIBLE_DEVICES for the job, and rewrites
`python -m MODULE ...` to `python -m torch.distributed.run --standalone --nproc_per_node N -m MODULE ...` (torchrun) when N > 1.

    python -m sempos.launch --gpus 2 -- python -m sempos.stages.pretrain --params params.yaml ...

Under SLURM each job already has its own allocation; the locks then simply cover that allocation.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

LOCK_DIR_ENV = "SEMPOS_GPU_LOCK_DIR"


def gpu_pool() -> list[str]:
    env = os.environ.get("SEMPOS_VISIBLE_GPUS", os.environ.get("CUDA_VISIBLE_DEVICES"))
    if env is not None:
        return [g for g in env.split(",") if g.strip() != ""]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


@contextlib.contextmanager
def acquire(n: int, pool: list[str], lock_dir: Path, poll_s: float = 2.0, timeout_s: float | None = None) -> Iterator[list[str]]:
    """Hold exclusive locks on n device ids of the pool until the block ends (waiting while busy)."""
    if n > len(pool):
        raise SystemExit(f"sempos.launch: asked for {n} GPUs but only {len(pool)} are visible ({pool}); "
                         f"lower runtime.gpus_per_job or run on a bigger node")
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        held = []
        for gid in pool:
            fh = open(lock_dir / f"gpu{gid}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            held.append((gid, fh))
            if len(held) == n:
                break
        if len(held) == n:
            try:
                yield [g for g, _ in held]
            finally:
                for _, fh in held:
                    fh.close()
            return
        for _, fh in held:
            fh.close()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {n} free GPUs within {timeout_s} s")
        time.sleep(poll_s)


def rewrite(cmd: list[str], n: int) -> list[str]:
    """`python -m X args` -> `python -m torch.distributed.run --standalone --nproc_per_node n -m X args` (n > 1).

    torchrun as a module of the same interpreter, so the workers get the venv the job was given.
    """
    if n <= 1:
        return cmd
    if len(cmd) >= 3 and Path(cmd[0]).name.startswith("python") and cmd[1] == "-m":
        return [cmd[0], "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", *cmd[2:]]
    raise SystemExit(f"sempos.launch: cannot start {shlex.join(cmd)} on {n} GPUs: expected `python -m MODULE ...`")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("usage: python -m sempos.launch --gpus N [--dry-run] -- COMMAND ...")
    split = argv.index("--")
    ap = argparse.ArgumentParser(prog="python -m sempos.launch")
    ap.add_argument("--gpus", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true", help="print the environment and command, run nothing")
    args = ap.parse_args(argv[:split])
    cmd = argv[split + 1:]
    if args.gpus <= 0:
        if args.dry_run:
            print(shlex.join(cmd))
            return 0
        return subprocess.call(cmd)
    lock_dir = Path(os.environ.get(LOCK_DIR_ENV, "/tmp/sempos-gpu-locks"))
    with acquire(args.gpus, gpu_pool(), lock_dir) as ids:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(ids)}
        final = rewrite(cmd, args.gpus)
        if args.dry_run:
            print(f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} {shlex.join(final)}")
            return 0
        return subprocess.call(final, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
