from pathlib import Path

from ..data.download import fetch_dataset
from ..data.kinds import is_encoded
from .common import run_stage


def body(params, args):
    if is_encoded(args.ds):
        from ..data.encoded import check_source

        check_source(args.ds, Path("data/raw") / args.ds, params["data"])
    else:
        fetch_dataset(args.ds, Path("data/raw"))


if __name__ == "__main__":
    raise SystemExit(run_stage("download", ("ds",), body))
