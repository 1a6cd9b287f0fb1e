"""Linear evaluation: the probe on precomputed frozen features (protocol: features, the default), or MoCo's
protocol on RRC + flip views of the training images through the frozen backbone (protocol: augmented)."""

from pathlib import Path

from ..eval.linear import linear_probe
from ..io import load_torch, save_json
from ..runtime import resolve
from .common import run_stage



def body(params, args):
    rt = resolve(params["runtime"])  # thread count
    cfg = params["eval"]["linear"]
    if cfg.get("protocol", "features") == "augmented":
        from ..data.prepare import load_prepared
        from ..eval.linear import linear_augmented
        from ..models.checkpoint import load_backbone

        data = load_prepared(Path(f"data/prepared/{args.ds}.pt"))
        bb, norm, _ = load_backbone(Path(f"runs/{args.ds}/{args.method}/seed{args.seed}/backbone.pt"), rt.device)
        acc = linear_augmented(bb, norm, data["train_x"], data["train_y"], data["splits"]["train"], data["test_x"],
                               data["test_y"], len(data["classes"]), cfg, seed=int(args.seed), device=rt.device)
    else:
        feats = load_torch(Path(f"features/{args.ds}/{args.method}/seed{args.seed}/{args.ds}.pt"))
        acc = linear_probe(feats["train_f"], feats["train_y"], feats["test_f"], feats["test_y"], feats["num_classes"],
                           epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                           weight_decay=cfg["weight_decay"], seed=int(args.seed))
    save_json({"method": args.method, "seed": int(args.seed), "dataset": args.ds, **cfg, **acc},
              Path(f"results/linear/{args.ds}/{args.method}/seed{args.seed}/metrics.json"))


if __name__ == "__main__":
    raise SystemExit(run_stage("linear", ("ds", "method", "seed"), body))
