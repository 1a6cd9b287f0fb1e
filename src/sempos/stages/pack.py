"""Pack an encoded dataset once into shards of JPEG bytes (resumable: a rerun keeps every verified shard)."""

from pathlib import Path

from ..data.encoded import pack_dataset
from ..data.loader import SETTINGS
from ..errors import ConfigError
from ..runtime import resolve
from .common import run_stage


def body(params, args):
    if args.ds != params["data"]["pretrain"]:
        raise ConfigError(f"--ds {args.ds} is not data.pretrain ({params['data']['pretrain']}); only the pretraining "
                          "dataset is packed")
    resolve({**params["runtime"], "device": "cpu"})  # thread count and loader workers; packing needs no GPU
    workers = SETTINGS.resolved_workers() + 1  # the main process only waits: every core packs
    pack_dataset(args.ds, Path("data/raw") / args.ds, Path(f"data/shards/{args.ds}.pt"), params["data"].get("pack"),
                 workers)


if __name__ == "__main__":
    raise SystemExit(run_stage("pack", ("ds",), body))
