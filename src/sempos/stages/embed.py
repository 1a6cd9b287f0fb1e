"""Features of a target dataset's train/val/test splits under a pretrained backbone (no augmentation), at the
backbone's training resolution (the transfer protocol's resize; prepare stores targets at that size)."""

import logging

from ..data.prepare import load_prepared
from ..io import save_torch
from ..runtime import resolve
from ..models.checkpoint import load_backbone
from ..eval.features import extract
from .common import run_stage


def body(params, args):
    rt = resolve(params["runtime"])
    bb, norm, meta = load_backbone(args.inputs["backbone"], rt.device)
    data = load_prepared(args.inputs["prepared"])
    size = meta["image_size"]
    stored = int(data["train_x"].shape[-1])
    if stored < size:
        logging.getLogger(__name__).warning(
            "%s is stored at %d px but the backbone was trained at %d px: its images are upsampled; set "
            "eval.transfer.image_size: %d (or leave it null) and rerun prepare", args.target, stored, size, size)
    # A target with other channels/statistics is standardised with the pretraining statistics,
    # as transfer protocols do with ImageNet's mean/std.
    out = {"meta": meta, "target": args.target}
    for split, (images, labels) in {
        "train": (data["train_x"][data["splits"]["train"]], data["train_y"][data["splits"]["train"]]),
        "val": (data["train_x"][data["splits"]["val"]], data["train_y"][data["splits"]["val"]]),
        "test": (data["test_x"], data["test_y"]),
    }.items():
        out[f"{split}_f"] = extract(bb, images, norm, rt.device, out_size=size, normalize=False,
                                    desc=f"embed {args.target} {split}").cpu()
        out[f"{split}_y"] = labels.clone()
    out["num_classes"] = len(data["classes"])
    out["val_split"] = data.get("val_split", "random")
    save_torch(out, args.outputs["features"])


if __name__ == "__main__":
    raise SystemExit(run_stage("embed", ("ds", "method", "seed", "target"), body))
