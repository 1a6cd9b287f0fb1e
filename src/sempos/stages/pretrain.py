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
    match = None
    if pcfg["match_steps"] is not None:
        # A compute-matched control is sized by its variant's pair list (same seed: mined pairs differ by seed).
        match = _pairs_of(params, data, pcfg["match_steps"], args.seed, args.inputs.get("match_pairs")).pairs
    pos = _pairs_of(params, data, args.method, args.seed, args.inputs.get("pairs"), match)
    job = PretrainJob(settings, int(args.seed), run_dir, data, pairs=pos.pairs, partners=pos.partners,
                      positives_cfg=pcfg)
    trainer = Trainer(job, resolve(params["runtime"]))
    # What the run trains on and for how long: the report compares methods by these, not by epochs alone.
    save_json({**pos.report, **trainer.budget()}, args.outputs["positives"])
    trainer.fit()


def _pairs_of(params, data, method: str, seed, pairs: str | None, match=None):
    """`pairs`: the stage table lists a pair file for mined sources only."""
    hp = method_settings(params, method)["hp"]
    return build_positives(hp, data, int(seed), Path(pairs) if pairs else None, match)


if __name__ == "__main__":
    raise SystemExit(run_stage("pretrain", ("ds", "method", "seed"), body))
