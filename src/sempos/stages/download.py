"""Fetch a dataset's files into its raw directory, verified (official URL or a verified offline copy)."""

from pathlib import Path

from ..data.download import fetch_dataset
from .common import run_stage


def body(params, args):
    raw = Path(args.outputs["raw"])
    fetch_dataset(args.ds, raw.parent)  # writes raw.parent / ds: the stage table's raw directory


if __name__ == "__main__":
    raise SystemExit(run_stage("download", ("ds",), body))
