"""Linear transfer of a pretrained backbone's frozen features to one target (docs/science.md §4.4): logistic
regression, C chosen on a validation split by the target's metric."""

import logging

import numpy as np

from ..data.catalog import metric_of
from ..eval.transfer import logistic_transfer
from ..io import load_torch, save_json
from .common import run_stage

log = logging.getLogger(__name__)


def heldout_halves(f: dict):
    """fmnist_heldout: images held out of pretraining (fmnist's val split), fit on a class-stratified half of
    them with C selected on the other half; the test split is fmnist's."""
    y = f["val_y"].numpy()
    rng = np.random.default_rng(0)
    first = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        first[idx[: len(idx) // 2]] = True
    x = f["val_f"].numpy()
    return x[first], y[first], x[~first], y[~first]


def body(params, args):
    f = load_torch(args.inputs["features"])
    if args.target == "fmnist_heldout":
        split, val_split = heldout_halves(f), "stratified half of the held-out images"
    else:
        split = (f["train_f"].numpy(), f["train_y"].numpy(), f["val_f"].numpy(), f["val_y"].numpy())
        val_split = f.get("val_split", "random")
    metric = metric_of(args.target)
    res = logistic_transfer(*split, f["test_f"].numpy(), f["test_y"].numpy(), params["eval"]["transfer"]["c_grid"],
                            metric)
    log.info("%s seed %s -> %s: %s %.2f (C=%g)", args.method, args.seed, args.target, metric, res["score"],
             res["best_c"])
    save_json({"method": args.method, "seed": int(args.seed), "pretrain": args.ds, "target": args.target,
               "protocol": "linear", "val_split": val_split, "feature_size": f["meta"].get("image_size"), **res},
              args.outputs["metrics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("transfer", ("ds", "method", "seed", "target"), body))
