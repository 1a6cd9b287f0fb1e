"""Fine-tune a pretrained backbone on a class-balanced 1% / 10% label subset; top-1/top-5 on the test split."""

import logging

from ..data.prepare import load_prepared
from ..errors import ConfigError
from ..eval.semisup import finetune
from ..io import save_json
from ..runtime import resolve
from ..models.checkpoint import load_backbone
from .common import run_stage

log = logging.getLogger(__name__)


def body(params, args):
    cfg = params["eval"]["semisup"]
    rt = resolve(params["runtime"])
    data = load_prepared(args.inputs["prepared"])
    subsets = data["splits"]["semi"]
    key = next((k for k in subsets if float(k) == float(args.frac)), None)
    if key is None:
        raise ConfigError(f"no {args.frac}% label subset in {args.inputs['prepared']} (it has {sorted(subsets)}); "
                          f"add {args.frac} to data.semi_fractions")
    bb, norm, meta = load_backbone(args.inputs["backbone"], rt.device)
    epochs = int(cfg["epochs"].get(str(args.frac), cfg["epochs"].get("default", 10)))
    res = finetune(bb, norm, data["train_x"], data["train_y"], subsets[key], data["splits"]["val"],
                   data["test_x"], data["test_y"], len(data["classes"]), cfg["recipe"], cfg, epochs,
                   int(args.seed), rt.device)
    log.info("%s seed %s, %s%% labels: top-1 %.2f", args.method, args.seed, args.frac, res["top1"])
    save_json({"method": args.method, "seed": int(args.seed), "dataset": args.ds, "fraction": float(args.frac), **res},
              args.outputs["metrics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("semisup", ("ds", "method", "seed", "frac"), body))
