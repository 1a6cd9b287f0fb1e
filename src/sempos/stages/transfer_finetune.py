"""Full fine-tuning of a pretrained backbone on one transfer target (eval.transfer.finetune: true)."""

from ..data.catalog import metric_of
from ..data.prepare import load_prepared
from ..eval.transfer_finetune import finetune_target
from ..io import save_json
from ..models.checkpoint import load_backbone
from ..runtime import resolve
from .common import run_stage


def body(params, args):
    rt = resolve(params["runtime"])
    bb, norm, _meta = load_backbone(args.inputs["backbone"], rt.device)
    data = load_prepared(args.inputs["prepared"])
    res = finetune_target(bb, norm, data, metric_of(args.target), params["eval"]["transfer"]["finetune_recipe"],
                          int(args.seed), rt.device)
    save_json({"method": args.method, "seed": int(args.seed), "pretrain": args.ds, "target": args.target,
               "protocol": "finetune", "val_split": data.get("val_split"), **res},
              args.outputs["metrics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("transfer_finetune", ("ds", "method", "seed", "target"), body))
