from pathlib import Path

from ..data.download import fetch_dataset
from .common import run_stage


def body(params, args):
    fetch_dataset(args.ds, Path("data/raw"))


if __name__ == "__main__":
    raise SystemExit(run_stage("download", ("ds",), body))
