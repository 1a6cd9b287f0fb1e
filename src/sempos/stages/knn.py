from pathlib import Path

import torch.nn.functional as F

from ..eval.knn import knn_accuracy
from ..io import load_torch, save_json
from .common import run_stage


def body(params, args):
    feats = load_torch(Path(f"features/{args.ds}/{args.method}/seed{args.seed}/{args.ds}.pt"))
    cfg = params["eval"]["knn"]
    acc = knn_accuracy(F.normalize(feats["train_f"], dim=1), feats["train_y"], F.normalize(feats["test_f"], dim=1),
                       feats["test_y"], feats["num_classes"], k=cfg["k"], temperature=cfg["temperature"])
    save_json({"method": args.method, "seed": int(args.seed), "dataset": args.ds, **cfg, **acc},
              Path(f"results/knn/{args.ds}/{args.method}/seed{args.seed}/metrics.json"))


if __name__ == "__main__":
    raise SystemExit(run_stage("knn", ("ds", "method", "seed"), body))
