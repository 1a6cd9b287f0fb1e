"""Algorithm name -> class, and checks of the method graph that params describe."""

from __future__ import annotations

from typing import Mapping

from ..errors import ConfigError
from .base import Algorithm
from .byol import BYOL
from .mocov2 import MoCoV2
from .mocov3 import MoCoV3
from .nnclr import NNCLR
from .none import RandomInit
from .simclr import SimCLR
from .simsiam import SimSiam
from .snclr import SNCLR

ALGOS: dict[str, type[Algorithm]] = {
    cls.name: cls for cls in (RandomInit, SimCLR, MoCoV2, BYOL, SimSiam, NNCLR, MoCoV3, SNCLR)
}
# Keys every method entry may carry whatever its algo (overrides of the shared sections).
COMMON_METHOD_KEYS = {"algo", "pretrain", "augment", "positives", "seeds"}


def get(algo: str) -> type[Algorithm]:
    if algo not in ALGOS:
        raise ConfigError(f"unknown algo '{algo}'; available: {sorted(ALGOS)}")
    return ALGOS[algo]


def check_method_graph(methods: Mapping, source: str) -> None:
    """Cross-method references: a mined source names an existing method that trains on augmented pairs."""
    for name, entry in methods.items():
        pos = entry.get("positives") or {}
        src = pos.get("source", "augment")
        if src in ("mined", "study_m"):
            frm = pos.get("from")
            if frm is None:
                raise ConfigError(f"invalid {source}: methods.{name}.positives.from is required for source {src} "
                                  f"(the method whose pretrained backbone mines the pairs)")
            if frm not in methods:
                raise ConfigError(f"invalid {source}: methods.{name}.positives.from '{frm}' is not a method; "
                                  f"choose one of {sorted(methods)}")
            if (methods[frm].get("positives") or {}).get("source", "augment") != "augment":
                raise ConfigError(f"invalid {source}: methods.{name}.positives.from '{frm}' must train on "
                                  f"augmented pairs (its own positives would make the DAG circular)")
        elif "from" in pos:
            raise ConfigError(f"invalid {source}: methods.{name}.positives.from only applies to mined sources")
        if pos.get("variant") == "M" and src in ("augment",) + tuple(s for s in ("study_s", "study_a", "study_a2", "study_m")):
            raise ConfigError(f"invalid {source}: methods.{name}.positives.variant M needs mined, oracle or random pairs")
        if pos.get("variant") == "M" and entry["algo"] not in ("simclr", "mocov2"):
            raise ConfigError(f"invalid {source}: methods.{name}: variant M is implemented for simclr and mocov2")
