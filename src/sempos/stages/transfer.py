"""Transfer by logistic regression on frozen features of a target dataset (C chosen on a validation split)."""

import logging

from ..eval.transfer import logistic_transfer
from ..io import load_torch, save_json
from .common import run_stage

log = logging.getLogger(__name__)


def body(params, args):
    f = load_torch(args.inputs["features"])
    if args.target == "fmnist_heldout":
        # Images held out of pretraining: fit on a class-stratified half of them, select C on the other.
        import numpy as np
        y = f["val_y"].numpy()
        rng = np.random.default_rng(0)
        first = np.zeros(len(y), bool)
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            first[idx[: len(idx) // 2]] = True
        x = f["val_f"].numpy()
        split = (x[first], y[first], x[~first], y[~first])
    else:
        split = (f["train_f"].numpy(), f["train_y"].numpy(), f["val_f"].numpy(), f["val_y"].numpy())
    res = logistic_transfer(*split, f["test_f"].numpy(), f["test_y"].numpy(), params["eval"]["transfer"]["c_grid"])
    log.info("%s seed %s -> %s: top-1 %.2f (C=%g)", args.method, args.seed, args.target, res["top1"], res["best_c"])
    save_json({"method": args.method, "seed": int(args.seed), "pretrain": args.ds, "target": args.target, **res},
              args.outputs["metrics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("transfer", ("ds", "method", "seed", "target"), body))
