"""Run the DAG without Snakemake or DVC: the stage table's jobs in dependency order, one at a time.

For machines that have torch but neither workflow tool (a lent GPU box with no internet):

    python -m sempos.runner --params params.yaml --configfile config/fmnist-gpu.yaml [-n]

A job runs when an output is missing or older than one of its inputs. Unlike Snakemake and DVC it does not
track params or code, so after changing either, delete the affected outputs (or use those tools).
Each job is the same command Snakemake and dvc.yaml run; a failed job stops the run with its name.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .pipeline import STAGES, Stage, final_targets, fill, instance_name, snakemake_params_file

Job = tuple[Stage, dict]


def ordered_jobs(p: dict) -> list[Job]:
    """Every job the final targets need, each after the jobs that produce its inputs."""
    producer: dict[str, Job] = {}
    for stage in STAGES.values():
        for wc in stage.instances(p):
            for out in stage.outputs:
                producer[fill(out, wc)] = (stage, wc)
    order: list[Job] = []
    done: set[str] = set()

    def visit(target: str, trail: tuple[str, ...]) -> None:
        job = producer.get(target)
        if job is None:
            return  # a source, not made by any stage
        key = instance_name(*job)
        if key in trail:
            raise RuntimeError(f"cycle in the stage table: {' -> '.join(trail + (key,))}")
        if key in done:
            return
        for dep in job[0].inputs(p, job[1]):
            visit(dep, trail + (key,))
        done.add(key)
        order.append(job)

    for target in final_targets(p):
        visit(target, ())
    return order


def _mtime(path: Path) -> float | None:
    """A file's mtime; for a directory output (data/raw/<ds>) the newest file inside it."""
    if not path.exists():
        return None
    if path.is_dir():
        times = [f.stat().st_mtime for f in path.rglob("*") if f.is_file()]
        return max(times) if times else None
    return path.stat().st_mtime


def is_stale(stage: Stage, wc: dict, p: dict) -> bool:
    outs = [_mtime(Path(fill(o, wc))) for o in stage.outputs]
    if any(t is None for t in outs):
        return True
    ins = [t for t in (_mtime(Path(i)) for i in stage.inputs(p, wc)) if t is not None]
    return bool(ins) and max(ins) > min(outs)


def command(stage: Stage, wc: dict, p: dict, params_file: str) -> list[str]:
    return shlex.split(stage.command(params_file, wc, python=shlex.quote(sys.executable), gpus=stage.gpus(p)))


def run(p: dict, params_file: str, dry_run: bool = False, log=print) -> int:
    jobs = ordered_jobs(p)
    todo = [(s, wc) for s, wc in jobs if is_stale(s, wc, p)]
    log(f"sempos.runner: {len(todo)} of {len(jobs)} jobs to run")
    for i, (stage, wc) in enumerate(todo, 1):
        cmd = command(stage, wc, p, params_file)
        log(f"[{i}/{len(todo)}] {instance_name(stage, wc)}: {shlex.join(cmd)}")
        if dry_run:
            continue
        t0 = time.perf_counter()
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            log(f"sempos.runner: {instance_name(stage, wc)} failed (exit {rc}); the jobs after it did not run. "
                "Fix the error above and rerun: finished jobs are kept and skipped")
            return rc
        log(f"[{i}/{len(todo)}] done in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .config import load_params

    ap = argparse.ArgumentParser(prog="python -m sempos.runner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--configfile", action="append", default=[], help="overlay(s) merged on top")
    ap.add_argument("-n", "--dry-run", action="store_true", help="list the jobs that would run")
    args = ap.parse_args(argv)
    p = load_params(args.params, args.configfile)
    return run(p, snakemake_params_file(p, args.params), args.dry_run)


if __name__ == "__main__":
    raise SystemExit(main())
