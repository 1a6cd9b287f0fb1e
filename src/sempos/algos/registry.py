"""Algorithm name -> class, imported on demand: algo `x` lives in sempos/algos/x.py.

Only the algorithm a job trains is imported, so a job's code deps (sempos.codedeps) hold that algorithm's
files and not the others': editing nnclr.py reruns NNCLR runs only. The stage table names the module per
job (`Stage.modules`), since this import by computed name is invisible to the static import closure.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Algorithm

# algo name (the module under sempos/algos/) -> its class
ALGOS: dict[str, str] = {
    "none": "RandomInit", "simclr": "SimCLR", "mocov2": "MoCoV2", "byol": "BYOL", "simsiam": "SimSiam",
    "nnclr": "NNCLR", "mocov3": "MoCoV3", "snclr": "SNCLR",
}
# Keys every method entry may carry whatever its algo (overrides of the shared sections).
COMMON_METHOD_KEYS = {"algo", "pretrain", "augment", "positives"}


def module_name(algo: str) -> str:
    if algo not in ALGOS:
        raise ConfigError(f"unknown algo '{algo}'; available: {sorted(ALGOS)}")
    return f"{__package__}.{algo}"


def get(algo: str) -> type[Algorithm]:
    return getattr(importlib.import_module(module_name(algo)), ALGOS[algo])
