"""Shared CLI plumbing: --params + wildcard arguments, logging, and errors printed as one clear line."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from ..config import load_params
from ..errors import SemposError


def run_stage(name: str, wildcards: tuple[str, ...], body: Callable[[dict, argparse.Namespace], None],
              argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m sempos.stages.{name}")
    ap.add_argument("--params", default="params.yaml", help="params file (already merged with overlays)")
    for wc in wildcards:
        ap.add_argument(f"--{wc}", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    try:
        params = load_params(args.params)
        body(params, args)
    except SemposError as exc:
        print(f"sempos {name}: error: {exc}", file=sys.stderr)
        return 2
    return 0
