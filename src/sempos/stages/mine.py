"""The Semantic Sampler stage: mine SPPS with the `from` run's backbone; write pairs + diagnostics."""

from pathlib import Path

from ..config import method_settings
from ..data.prepare import load_prepared
from ..errors import ConfigError
from ..io import save_json
from ..mining.sampler import mine, write_pairs
from ..runtime import resolve
from ..positives.sources import MINED_SOURCES, positives_cfg
from .common import run_stage


def body(params, args):
    settings = method_settings(params, args.method)
    cfg = positives_cfg(settings["hp"])
    if cfg["source"] not in MINED_SOURCES:
        raise ConfigError(f"methods.{args.method}.positives.source is {cfg['source']}, not mined: nothing to mine")
    rt = resolve(params["runtime"])
    data = load_prepared(args.inputs["prepared"])
    # cfg: the entry's positives over the one set of defaults (sources.DEFAULTS, dup_threshold included);
    # the sampler reads its own keys from it.
    pairs, cos, diag = mine(Path(args.inputs["backbone"]), data, cfg, rt.device, k_max=int(cfg.get("k_max") or 0))
    diag.update({"method": args.method, "from": cfg["from"], "seed": int(args.seed)})
    diag["sha256"] = write_pairs(Path(args.outputs["pairs"]), pairs, cos)
    save_json(diag, args.outputs["diagnostics"])


if __name__ == "__main__":
    raise SystemExit(run_stage("mine", ("ds", "method", "seed"), body))
