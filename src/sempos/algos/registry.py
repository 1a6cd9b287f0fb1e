"""Algorithm name -> class, and checks of the method graph that params describe."""

from __future__ import annotations

from typing import Mapping

from ..errors import ConfigError
from .base import Algorithm
from .mocov2 import MoCoV2
from .none import RandomInit
from .simclr import SimCLR

ALGOS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (RandomInit, SimCLR, MoCoV2)}
# Keys every method entry may carry whatever its algo (overrides of the shared sections).
COMMON_METHOD_KEYS = {"algo", "pretrain", "augment"}


def get(algo: str) -> type[Algorithm]:
    if algo not in ALGOS:
        raise ConfigError(f"unknown algo '{algo}'; available: {sorted(ALGOS)}")
    return ALGOS[algo]


def check_method_graph(methods: Mapping, source: str) -> None:
    """Hook for cross-method references (e.g. mined positives naming their sampler run)."""
    return None
