"""Weighted kNN accuracy on frozen features (the train split is the bank)."""

import logging

import torch.nn.functional as F

from ..eval.knn import knn_accuracy
from ..io import load_torch, save_json
from .common import run_stage

log = logging.getLogger(__name__)


def body(params, args):
    feats = load_torch(args.inputs["features"])
    cfg = params["eval"]["knn"]
    acc = knn_accuracy(F.normalize(feats["train_f"], dim=1), feats["train_y"], F.normalize(feats["test_f"], dim=1),
                       feats["test_y"], feats["num_classes"], k=cfg["k"], temperature=cfg["temperature"])
    log.info("%s seed %s: kNN top-1 %.2f, top-5 %.2f", args.method, args.seed, acc["top1"], acc["top5"])
    save_json({"method": args.method, "seed": int(args.seed), "dataset": args.ds, **cfg, **acc},
              args.outputs["metrics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("knn", ("ds", "method", "seed"), body))
