from pathlib import Path

from ..eval.linear import linear_probe
from ..io import load_torch, save_json
from ..runtime import resolve
from .common import run_stage


def body(params, args):
    resolve(params["runtime"])  # thread count
    feats = load_torch(Path(f"features/{args.ds}/{args.method}/seed{args.seed}/{args.ds}.pt"))
    cfg = params["eval"]["linear"]
    acc = linear_probe(feats["train_f"], feats["train_y"], feats["test_f"], feats["test_y"], feats["num_classes"],
                       epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                       weight_decay=cfg["weight_decay"], seed=int(args.seed))
    save_json({"method": args.method, "seed": int(args.seed), "dataset": args.ds, **cfg, **acc},
              Path(f"results/linear/{args.ds}/{args.method}/seed{args.seed}/metrics.json"))


if __name__ == "__main__":
    raise SystemExit(run_stage("linear", ("ds", "method", "seed"), body))
