"""Shared CLI plumbing of every stage: --params + wildcards -> the job's paths from the stage table, input
checks, a log file, progress, the job record, and errors printed as one clear line.

A body is `body(params, args)`: `args` holds the wildcards (args.ds, args.method, ...) and the job
(`args.job`, with `args.inputs` / `args.outputs`: name -> path, as the stage table declares them).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from typing import Callable

from .. import progress, provenance
from ..config import load_params
from ..errors import ConfigError, SemposError

log = logging.getLogger("sempos")


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _setup_logging(name: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)


def _log_to_file(path: str) -> logging.Handler | None:
    if not _is_main_process():
        return None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    logging.getLogger().addHandler(handler)
    return handler


def find_job(name: str, params: dict, wc: dict, source: str):
    from ..pipeline import STAGES, instance_name, job

    stage = STAGES[name]
    instances = [{k: str(v) for k, v in i.items()} for i in stage.instances(params)]
    if wc not in instances:
        names = [instance_name(stage, i) for i in instances]
        shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
        raise ConfigError(f"{instance_name(stage, wc)} is not a job of {source} (its {name} jobs: {shown or 'none'})")
    return job(stage, params, wc)


def run_stage(name: str, wildcards: tuple[str, ...], body: Callable[[dict, argparse.Namespace], None],
              argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m sempos.stages.{name}")
    ap.add_argument("--params", default="params.yaml", help="params file (already merged with overlays)")
    for wc in wildcards:
        ap.add_argument(f"--{wc}", required=True)
    args = ap.parse_args(argv)
    _setup_logging(name)
    start = time.perf_counter()
    handler = None
    try:
        params = load_params(args.params)
        job = find_job(name, params, {k: str(getattr(args, k)) for k in wildcards}, args.params)
        handler = _log_to_file(job.log)
        progress.configure(progress.wanted(params["runtime"]))
        provenance.check_inputs(params, job, args.params)
        args.job, args.inputs, args.outputs = job, job.inputs, job.outputs
        body(params, args)
        if _is_main_process():
            provenance.write_record(params, job)
        log.info("%s done in %s", job.name, progress.duration(time.perf_counter() - start))
    except SemposError as exc:
        if handler is not None:
            handler.stream.write(f"error: {exc}\n")
        print(f"sempos {name}: error: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        if handler is not None:
            handler.stream.write(traceback.format_exc())
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return 0
