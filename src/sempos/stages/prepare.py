"""Verified raw files -> one tensor file: uint8 images, labels, and the fixed split index lists."""

from pathlib import Path

from ..data.prepare import prepare
from .common import run_stage


def body(params, args):
    prepare(args.ds, Path(args.inputs["raw"]).parent, Path(args.outputs["prepared"]), params["data"])


if __name__ == "__main__":
    raise SystemExit(run_stage("prepare", ("ds",), body))
