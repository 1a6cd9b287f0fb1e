"""Linear transfer of a pretrained backbone's frozen features to one target (docs/science.md §4.4)."""

from pathlib import Path

import numpy as np

from ..data.catalog import dataset_of_target, metric_of
from ..eval.transfer import logistic_transfer
from ..io import load_torch, save_json
from .common import run_stage


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
    source = dataset_of_target(args.target)
    f = load_torch(Path(f"features/{args.ds}/{args.method}/seed{args.seed}/{source}.pt"))
    if args.target == "fmnist_heldout":
        split, val_split = heldout_halves(f), "stratified half of the held-out images"
    else:
        split = (f["train_f"].numpy(), f["train_y"].numpy(), f["val_f"].numpy(), f["val_y"].numpy())
        val_split = f.get("val_split", "random")
    metric = metric_of(args.target)
    res = logistic_transfer(*split, f["test_f"].numpy(), f["test_y"].numpy(), params["eval"]["transfer"]["c_grid"],
                            metric)
    save_json({"method": args.method, "seed": int(args.seed), "pretrain": args.ds, "target": args.target,
               "protocol": "linear", "val_split": val_split, "feature_size": f["meta"].get("image_size"), **res},
              Path(f"results/transfer/{args.target}/{args.ds}/{args.method}/seed{args.seed}/metrics.json"))


if __name__ == "__main__":
    raise SystemExit(run_stage("transfer", ("ds", "method", "seed", "target"), body))
