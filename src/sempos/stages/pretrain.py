"""Pretrain one method with one seed: backbone.pt, history.csv and the positives report of the run."""

from pathlib import Path

from ..config import method_settings
from ..data.prepare import load_prepared
from ..errors import ConfigError
from ..io import save_json
from ..runtime import resolve
from ..positives.sources import build_positives, positives_cfg
from ..train.trainer import PretrainJob, Trainer
from .common import run_stage


def body(params, args):
    if args.ds != params["data"]["pretrain"]:
        raise ConfigError(f"--ds {args.ds} is not data.pretrain ({params['data']['pretrain']})")
    settings = method_settings(params, args.method)
    data = load_prepared(args.inputs["prepared"])
    # The trainer writes backbone.pt, history.csv and checkpoint.pt into the run directory.
    run_dir = Path(args.outputs["backbone"]).parent
    pcfg = positives_cfg(settings["hp"])
    pairs = args.inputs.get("pairs")  # the stage table lists a pair file for mined sources only
    pos = build_positives(settings["hp"], data, int(args.seed), Path(pairs) if pairs else None)
    save_json(pos.report, args.outputs["positives"])
    job = PretrainJob(settings, int(args.seed), run_dir, data, pairs=pos.pairs, partners=pos.partners,
                      positives_cfg=pcfg)
    Trainer(job, resolve(params["runtime"])).fit()


if __name__ == "__main__":
    raise SystemExit(run_stage("pretrain", ("ds", "method", "seed"), body))
