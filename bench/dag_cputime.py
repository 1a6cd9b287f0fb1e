"""Estimate a DAG's wall time on an idle machine from a run on a busy one.

Runs every job of the stage table one at a time (like `python -m sempos.runner`), records each job's CPU
time (user + system of the job's processes), then replays the DAG with those durations on N workers, the
way `snakemake --cores N` schedules 1-thread jobs (list scheduling in dependency order). On a shared machine
wall times inflate with the load while CPU time barely does, so the replay estimates the idle wall time.
It is an estimate (no memory-bandwidth contention between the N jobs, no Snakemake overhead): time the real
thing with `time snakemake --cores 2` on an idle machine.

    python bench/dag_cputime.py [--configfile config/X.yaml] [--workers 2] [--out cputime.json]

Run it in an empty work directory (a fresh clone): it runs every job whose outputs are missing or stale.
"""

from __future__ import annotations

import argparse
import heapq
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path


def replay(jobs: list[dict], workers: int) -> float:
    """Makespan of list scheduling: jobs ({name, deps, seconds}) start in the given order as soon as their
    dependencies have finished and a worker is free."""
    pending, running, done, t = list(jobs), [], set(), 0.0
    while pending or running:
        for j in [j for j in pending if all(d in done for d in j["deps"])]:
            if len(running) == workers:
                break
            pending.remove(j)
            heapq.heappush(running, (t + j["seconds"], j["name"]))
        if not running:
            raise RuntimeError(f"unsatisfiable dependencies: {[j['name'] for j in pending]}")
        t, name = heapq.heappop(running)
        done.add(name)
    return t


def main(argv: list[str] | None = None) -> int:
    from sempos.config import load_params
    from sempos.pipeline import fill, instance_name, snakemake_params_file
    from sempos.runner import is_stale, ordered_jobs

    ap = argparse.ArgumentParser(prog="bench/dag_cputime.py")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--configfile", action="append", default=[])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="cputime.json")
    args = ap.parse_args(argv)
    p = load_params(args.params, args.configfile)
    params_file = snakemake_params_file(p, args.params)
    jobs = ordered_jobs(p)
    producer = {fill(o, wc): instance_name(s, wc) for s, wc in jobs for o in s.outputs}
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    for stage, wc in jobs:
        name = instance_name(stage, wc)
        deps = sorted({producer[i] for i in stage.inputs(p, wc) if i in producer})
        if name in record and not is_stale(stage, wc, p):
            continue
        cmd = shlex.split(stage.command(params_file, wc, python=shlex.quote(sys.executable)))
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, check=True)
        r1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        record[name] = {"stage": stage.name, "deps": deps, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)}
        out.write_text(json.dumps(record, indent=1))
        print(f"{name}: cpu {cpu:.1f} s, wall {wall:.1f} s", flush=True)
    order = [instance_name(s, wc) for s, wc in jobs]
    replayed = replay([{"name": n, "deps": record[n]["deps"], "seconds": record[n]["cpu_s"]} for n in order],
                      args.workers)
    per_stage: dict[str, float] = {}
    for n in order:
        per_stage[record[n]["stage"]] = per_stage.get(record[n]["stage"], 0.0) + record[n]["cpu_s"]
    total = sum(per_stage.values())
    print(f"{len(order)} jobs; CPU time {total:.0f} s; replayed on {args.workers} workers: "
          f"{replayed:.0f} s = {replayed / 60:.1f} min (estimate of the idle wall time)")
    print("per stage (CPU s): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(per_stage.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
