"""Algorithm name -> class, and checks of the method graph that params describe."""

from __future__ import annotations

from typing import Mapping

from ..errors import ConfigError
from .base import SWITCH_KEYS, Algorithm, partner_switches
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
COMMON_METHOD_KEYS = {"algo", "pretrain", "augment", "positives"}
# Sources without an extra pair list, hence without partners for the partner switches to read.
PAIRLESS_SOURCES = ("augment", "study_s", "study_a", "study_a2", "study_m")


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
        switches = partner_switches(pos)
        asked = [k for k, on in switches.items() if on]
        if asked and src in PAIRLESS_SOURCES:
            keys = " and ".join(f"positives.{SWITCH_KEYS[k]}" for k in asked)
            raise ConfigError(f"invalid {source}: methods.{name}: {keys} needs an extra pair list (positives.source "
                              f"mined, oracle or random), not source {src}")
        get(entry["algo"]).check_switches(switches, f"invalid {source}: methods.{name}: ", ALGOS.values())
