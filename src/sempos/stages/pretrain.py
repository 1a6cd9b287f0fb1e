from pathlib import Path

from ..config import method_settings
from ..data.prepare import load_prepared
from ..errors import ConfigError
from ..io import save_json
from ..runtime import resolve
from ..positives.sources import MINED_SOURCES, build_positives, positives_cfg
from ..train.trainer import PretrainJob, Trainer
from .common import run_stage


def pairs_path(ds: str, method: str, seed) -> Path:
    return Path(f"pairs/{ds}/{method}/seed{seed}.csv")


def body(params, args):
    if args.ds != params["data"]["pretrain"]:
        raise ConfigError(f"--ds {args.ds} is not data.pretrain ({params['data']['pretrain']})")
    settings = method_settings(params, args.method)
    data = load_prepared(Path(f"data/prepared/{args.ds}.pt"))
    run_dir = Path(f"runs/{args.ds}/{args.method}/seed{args.seed}")
    pcfg = positives_cfg(settings["hp"])
    match = None
    if pcfg["match_steps"] is not None:
        # A compute-matched control is sized by its variant's pair list (same seed: mined pairs differ by seed).
        match = _pairs_of(params, data, pcfg["match_steps"], args).pairs
    pos = _pairs_of(params, data, args.method, args, match)
    job = PretrainJob(settings, int(args.seed), run_dir, data, pairs=pos.pairs, partners=pos.partners,
                      positives_cfg=pcfg)
    trainer = Trainer(job, resolve(params["runtime"]))
    # What the run trains on and for how long: the report compares methods by these, not by epochs alone.
    save_json({**pos.report, **trainer.budget()}, run_dir / "positives.json")
    trainer.fit()


def _pairs_of(params, data, method: str, args, match=None):
    hp = method_settings(params, method)["hp"]
    pfile = pairs_path(args.ds, method, args.seed) if positives_cfg(hp)["source"] in MINED_SOURCES else None
    return build_positives(hp, data, int(args.seed), pfile, match)


if __name__ == "__main__":
    raise SystemExit(run_stage("pretrain", ("ds", "method", "seed"), body))
