"""Fetch a dataset's files into its raw directory, verified (official URL or a verified offline copy)."""

from pathlib import Path

from ..data.download import fetch_dataset
from ..data.kinds import is_encoded
from .common import run_stage


def body(params, args):
    raw = Path(args.outputs["raw"])
    if is_encoded(args.ds):
        from ..data.encoded import check_source

        check_source(args.ds, raw, params["data"])
    else:
        fetch_dataset(args.ds, raw.parent)  # writes raw.parent / ds: the stage table's raw directory


if __name__ == "__main__":
    raise SystemExit(run_stage("download", ("ds",), body))
