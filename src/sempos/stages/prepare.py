from pathlib import Path

from ..data.prepare import prepare, transfer_image_size
from .common import run_stage


def body(params, args):
    is_target = args.ds != params["data"]["pretrain"]
    prepare(args.ds, Path("data/raw"), Path(f"data/prepared/{args.ds}.pt"), params["data"],
            target_size=transfer_image_size(params) if is_target else None)


if __name__ == "__main__":
    raise SystemExit(run_stage("prepare", ("ds",), body))
