from pathlib import Path

from ..config import method_settings
from ..data.prepare import load_prepared
from ..errors import ConfigError
from ..runtime import resolve
from ..train.trainer import PretrainJob, Trainer
from .common import run_stage


def body(params, args):
    if args.ds != params["data"]["pretrain"]:
        raise ConfigError(f"--ds {args.ds} is not data.pretrain ({params['data']['pretrain']})")
    settings = method_settings(params, args.method)
    data = load_prepared(Path(f"data/prepared/{args.ds}.pt"))
    run_dir = Path(f"runs/{args.ds}/{args.method}/seed{args.seed}")
    Trainer(PretrainJob(settings, int(args.seed), run_dir, data), resolve(params["runtime"])).fit()


if __name__ == "__main__":
    raise SystemExit(run_stage("pretrain", ("ds", "method", "seed"), body))
