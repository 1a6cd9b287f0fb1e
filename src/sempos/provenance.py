"""Job records: what made each output, so a stage can refuse inputs made with other settings.

Every job writes `<first output>.record.json` (a declared output, so Snakemake and DVC keep it with the
job's files) holding
  settings  the values of the params keys the job read (the same values Snakemake records per rule),
  code      a digest of the source files its command imports (sempos.codedeps),
  inputs    {path: sha256} of the files it read,
  outputs   {path: sha256} of the files it wrote.
Before a stage runs, `check_inputs` walks up the DAG from each input: the file must still have the digest
its producer recorded, the producer's settings must equal what the current params say, and the files the
producer read must be unchanged since (recursively). The first mismatch is one InputError naming the file,
what differs, and the command that rebuilds it — so a stage run by hand after a smoke run no longer trains
on the smoke split, and a corrupt checkpoint or pair file is named instead of half-read.
A chain stops at a file that no longer exists upstream (intermediates may be deleted once used).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

from .digests import digest
from .errors import InputError
from .io import save_json

MAX_DIFFS = 4


def code_digest(modules: tuple[str, ...]) -> str:
    from .codedeps import code_digests

    return hashlib.sha256(json.dumps(code_digests(modules), sort_keys=True).encode()).hexdigest()[:16]


def make_record(p: dict, job) -> dict:
    from .pipeline import job_modules

    return {
        "job": job.name,
        "settings": job.settings(p),
        "code": code_digest(job_modules(job.stage, p, job.wc)),
        "inputs": {f: digest(f) for f in job.input_files()},
        "outputs": {f: digest(f) for f in job.output_files()},
    }


def write_record(p: dict, job) -> None:
    missing = [f for f in job.output_files() if not Path(f).exists()]
    if missing:
        raise InputError(f"{job.name} finished without writing {missing}: a bug in sempos.stages.{job.stage.name}")
    save_json(make_record(p, job), job.record)


def read_record(path: str | os.PathLike) -> dict | None:
    try:
        rec = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise InputError(f"{path} is not a readable job record; delete it and rebuild the job's outputs") from None
    return rec if isinstance(rec, dict) and {"settings", "inputs", "outputs"} <= set(rec) else None


def _leaves(value, prefix: str) -> dict:
    if isinstance(value, Mapping) and value:
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def settings_diff(recorded: Mapping, current: Mapping) -> list[str]:
    """'key: made with A, params have B' for every leaf setting that differs."""
    old, new = {}, {}
    for k, v in recorded.items():
        old.update(_leaves(v, k))
    for k, v in current.items():
        new.update(_leaves(v, k))
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "<unset>") != new.get(key, "<unset>"):
            out.append(f"{key} {json.dumps(old.get(key, '<unset>'))} -> {json.dumps(new.get(key, '<unset>'))}")
    return out


def _rebuild(path: str) -> str:
    return f"rebuild it: snakemake {path} (or delete it and rerun its stage)"


class _Walk:
    def __init__(self, p: dict, source: str) -> None:
        from .pipeline import producers

        self.p, self.source, self.index, self.done = p, source, producers(p), set()

    def check(self, path: str) -> None:
        if path in self.done:
            return
        self.done.add(path)
        prod = self.index.get(path)
        if prod is None:
            return  # a source file (not made by a stage)
        rec = read_record(prod.record)
        if rec is None:
            if not prod.settings(self.p) and not prod.input_files():
                return  # nothing to compare: a job without settings or inputs (a download)
            raise InputError(f"{path} has no record of how it was made ({prod.record} missing: made by hand, "
                             f"by an older sempos, or cut short); {_rebuild(path)}")
        if rec["outputs"].get(path) != digest(path):
            raise InputError(f"{path} is not the file {prod.name} wrote (its sha256 differs from {prod.record}): "
                             f"corrupt or edited; {_rebuild(path)}")
        diff = settings_diff(rec["settings"], prod.settings(self.p))
        if diff:
            more = f" (+{len(diff) - MAX_DIFFS} more)" if len(diff) > MAX_DIFFS else ""
            raise InputError(f"{path} was made with other settings than {self.source}: "
                             f"{'; '.join(diff[:MAX_DIFFS])}{more}; {_rebuild(path)}")
        for up in prod.input_files():
            if not Path(up).exists():
                continue  # deleted after use: nothing left to compare against
            self.check(up)
            if rec["inputs"].get(up) != digest(up):
                raise InputError(f"{path} is out of date: {up} changed after {prod.name} read it; {_rebuild(path)}")


def check_inputs(p: dict, job, source: str = "the params") -> None:
    """Raise one InputError if an input of `job` is missing, corrupt, or made with other settings."""
    missing = [f for f in job.input_files() if not Path(f).exists()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        raise InputError(f"{job.name} needs {len(missing)} input(s) that do not exist: {shown}; make them first: "
                         f"snakemake {' '.join(job.output_files()[:1])}")
    walk = _Walk(p, source)
    for f in job.input_files():
        walk.check(f)


def is_current(p: dict, job) -> tuple[bool, str]:
    """Whether `job`'s outputs are up to date by its record (for sempos.runner): (fresh?, why not)."""
    from .pipeline import job_modules

    if any(not Path(f).exists() for f in job.output_files()):
        return False, "outputs missing"
    rec = read_record(job.record)
    if rec is None:
        return False, "no record"
    if rec["settings"] != job.settings(p):
        return False, "settings changed"
    if rec.get("code") != code_digest(job_modules(job.stage, p, job.wc)):
        return False, "code changed"
    for f in job.input_files():
        if not Path(f).exists() or rec["inputs"].get(f) != digest(f):
            return False, f"{f} changed"
    for f in job.output_files():
        if rec["outputs"].get(f) != digest(f):
            return False, f"{f} was modified"
    return True, ""
