"""Algorithm name -> class, imported on demand: algo `x` lives in sempos/algos/x.py.

Only the algorithm a job trains is imported, so a job's code deps (sempos.codedeps) hold that algorithm's
files and not the others': editing nnclr.py reruns NNCLR runs only. The stage table names the module per
job (`Stage.modules`), since this import by computed name is invisible to the static import closure.
"""

from __future__ import annotations

import importlib
from typing import Iterator, Mapping

from ..errors import ConfigError
from .base import Algorithm

# algo name (the module under sempos/algos/) -> its class
CLASS_NAMES: dict[str, str] = {
    "none": "RandomInit", "simclr": "SimCLR", "mocov2": "MoCoV2", "byol": "BYOL", "simsiam": "SimSiam",
    "nnclr": "NNCLR", "mocov3": "MoCoV3", "snclr": "SNCLR",
}


def module_name(algo: str) -> str:
    if algo not in CLASS_NAMES:
        raise ConfigError(f"unknown algo '{algo}'; available: {sorted(CLASS_NAMES)}")
    return f"{__package__}.{algo}"


class _Algorithms(Mapping):
    """name -> class; a class's module is imported when the class is first looked up."""

    def __getitem__(self, algo: str) -> type[Algorithm]:
        return getattr(importlib.import_module(module_name(algo)), CLASS_NAMES[algo])

    def __iter__(self) -> Iterator[str]:
        return iter(CLASS_NAMES)

    def __len__(self) -> int:
        return len(CLASS_NAMES)


ALGOS: Mapping[str, type[Algorithm]] = _Algorithms()


def get(algo: str) -> type[Algorithm]:
    return ALGOS[algo]
