from pathlib import Path

from ..data.prepare import prepare
from .common import run_stage


def body(params, args):
    prepare(args.ds, Path("data/raw"), Path(f"data/prepared/{args.ds}.pt"), params["data"])


if __name__ == "__main__":
    raise SystemExit(run_stage("prepare", ("ds",), body))
