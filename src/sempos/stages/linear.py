"""Linear probe on frozen, standardised features; last-epoch top-1/top-5."""

import logging

from ..eval.linear import linear_probe
from ..io import load_torch, save_json
from ..runtime import resolve
from .common import run_stage

log = logging.getLogger(__name__)


def body(params, args):
    resolve(params["runtime"])  # thread count
    feats = load_torch(args.inputs["features"])
    cfg = params["eval"]["linear"]
    acc = linear_probe(feats["train_f"], feats["train_y"], feats["test_f"], feats["test_y"], feats["num_classes"],
                       epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                       weight_decay=cfg["weight_decay"], seed=int(args.seed))
    log.info("%s seed %s: linear top-1 %.2f, top-5 %.2f", args.method, args.seed, acc["top1"], acc["top5"])
    save_json({"method": args.method, "seed": int(args.seed), "dataset": args.ds, **cfg, **acc},
              args.outputs["metrics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("linear", ("ds", "method", "seed"), body))
