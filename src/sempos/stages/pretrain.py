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
    pfile = pairs_path(args.ds, args.method, args.seed) if pcfg["source"] in MINED_SOURCES else None
    pos = build_positives(settings["hp"], data, int(args.seed), pfile)
    save_json(pos.report, run_dir / "positives.json")
    job = PretrainJob(settings, int(args.seed), run_dir, data, pairs=pos.pairs, partners=pos.partners,
                      positives_cfg=pcfg)
    Trainer(job, resolve(params["runtime"])).fit()


if __name__ == "__main__":
    raise SystemExit(run_stage("pretrain", ("ds", "method", "seed"), body))
