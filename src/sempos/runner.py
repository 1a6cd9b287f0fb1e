"""Run the DAG without Snakemake or DVC: the stage table's jobs in dependency order, one at a time.

For machines that have torch but neither workflow tool (a lent GPU box with no internet):

    python -m sempos.runner --params params.yaml --configfile config/fmnist-gpu.yaml [-n]

A job runs when its record (sempos.provenance) says it is not current — an output is missing, its settings
or code changed, or an input is not the file it read — or when a job it depends on runs. Each job is the
same command Snakemake and dvc.yaml run; a failed job stops the run with its name. Progress: one line per
job with its duration and an ETA for the rest of the run (mean job time so far x jobs left).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time

from .pipeline import Job, all_jobs, final_targets, snakemake_params_file
from .progress import duration
from .provenance import is_current


def ordered_jobs(p: dict) -> list[Job]:
    """Every job the final targets need, each after the jobs that produce its inputs."""
    producer = {out: j for j in all_jobs(p) for out in j.output_files()}
    order: list[Job] = []
    done: set[str] = set()

    def visit(target: str, trail: tuple[str, ...]) -> None:
        j = producer.get(target)
        if j is None:
            return  # a source, not made by any stage
        if j.name in trail:
            raise RuntimeError(f"cycle in the stage table: {' -> '.join(trail + (j.name,))}")
        if j.name in done:
            return
        for dep in j.input_files():
            visit(dep, trail + (j.name,))
        done.add(j.name)
        order.append(j)

    for target in final_targets(p):
        visit(target, ())
    return order


def plan(p: dict, jobs: list[Job]) -> list[tuple[Job, str]]:
    """The jobs to run, with why: not current by its record, or downstream of a job that runs."""
    producer = {out: j.name for j in jobs for out in j.output_files()}
    todo, running = [], set()
    for j in jobs:
        fresh, why = is_current(p, j)
        rebuilt = [f for f in j.input_files() if producer.get(f) in running]
        if not fresh or rebuilt:
            running.add(j.name)
            todo.append((j, why or f"{rebuilt[0]} is rebuilt"))
    return todo


def command(j: Job, p: dict, params_file: str) -> list[str]:
    return shlex.split(j.stage.command(params_file, j.wc, python=shlex.quote(sys.executable), gpus=j.stage.gpus(p)))


def run(p: dict, params_file: str, dry_run: bool = False, log=print) -> int:
    jobs = ordered_jobs(p)
    todo = plan(p, jobs)
    log(f"sempos.runner: {len(todo)} of {len(jobs)} jobs to run")
    start = time.perf_counter()
    for i, (j, why) in enumerate(todo, 1):
        cmd = command(j, p, params_file)
        log(f"[{i}/{len(todo)}] {j.name} ({why}): {shlex.join(cmd)}")
        if dry_run:
            continue
        t0 = time.perf_counter()
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            log(f"sempos.runner: {j.name} failed (exit {rc}); the jobs after it did not run. "
                f"Fix the error above (log: {j.log}) and rerun: finished jobs are kept and skipped")
            return rc
        left = len(todo) - i
        eta = (time.perf_counter() - start) / i * left
        log(f"[{i}/{len(todo)}] done in {duration(time.perf_counter() - t0)}"
            + (f"; {left} left, ETA {duration(eta)}" if left else f"; all done in {duration(time.perf_counter() - start)}"))
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
