"""Progress of long loops: a tqdm bar (with rate and ETA) on a terminal, silent in CI and in log files.

`runtime.progress` decides: auto (the default) shows bars when stderr is a terminal and CI is not set,
on the main process only. Stage code wraps its long loop with `bar(...)`; run_stage configures it once.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Mapping, TypeVar

from tqdm import tqdm

T = TypeVar("T")
_enabled = False


def wanted(runtime_cfg: Mapping) -> bool:
    """runtime.progress resolved: True/False as set, or auto = a terminal, not CI, the main process."""
    setting = runtime_cfg.get("progress", "auto")
    if setting == "auto":
        setting = sys.stderr.isatty() and not os.environ.get("CI")
    return bool(setting) and int(os.environ.get("RANK", "0")) == 0


def configure(enabled: bool) -> None:
    global _enabled
    _enabled = bool(enabled)


def enabled() -> bool:
    return _enabled


def bar(iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", unit: str = "it",
        leave: bool = False) -> tqdm:
    """A tqdm bar when progress is on; otherwise the same iterable, untouched (tqdm disabled)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=not _enabled,
                mininterval=0.5, dynamic_ncols=True, file=sys.stderr)


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 07 min': rounded for logs."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def rounded(values: Mapping, digits: int = 4) -> dict:
    """A dict of numbers for a log line: floats rounded (4 significant-ish decimals), the rest as is."""
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in values.items()}
