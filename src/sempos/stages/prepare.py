"""Verified raw files -> one tensor file: uint8 images, labels, and the fixed split index lists (or, for an
encoded JPEG dataset, the index over the pack stage's shards)."""

from pathlib import Path

from ..data.prepare import prepare, transfer_image_size
from .common import run_stage


def body(params, args):
    raw, out = Path(args.inputs["raw"]), Path(args.outputs["prepared"])
    if "shards" in args.inputs:  # the stage table lists the pack manifest for encoded datasets only
        from ..data.encoded import prepare_encoded

        prepare_encoded(args.ds, raw, Path(args.inputs["shards"]), out, dict(params["data"]))
    else:
        is_target = args.ds != params["data"]["pretrain"]
        prepare(args.ds, raw.parent, out, params["data"], target_size=transfer_image_size(params) if is_target else None)


if __name__ == "__main__":
    raise SystemExit(run_stage("prepare", ("ds",), body))
