"""Device, precision and threading choices from params.runtime."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping

import torch

from .errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    progress: bool
    sync_bn: bool = False

    @property
    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


def resolve(cfg: Mapping) -> Runtime:
    from . import dist

    want = cfg.get("device", "auto")
    ddp_device = dist.init_from_env()
    if want == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device is 'cuda' but no CUDA device is visible; set runtime.device: auto or cpu")
    device = torch.device("cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu")
    if ddp_device is not None and device.type == ddp_device.type:
        device = ddp_device
    torch.set_num_threads(int(cfg.get("threads", 2)))
    precision = cfg.get("precision", "auto")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        amp = torch.bfloat16
    else:
        amp = None
    cl = cfg.get("channels_last", "auto")
    progress = cfg.get("progress", "auto")
    if progress == "auto":
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    from .data import loader

    # Encoded (JPEG) datasets only: decode processes and where decoding runs (sempos.data.loader).
    loader.configure(workers=cfg.get("loader_workers", "auto"), decode=cfg.get("decode", "auto"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, amp, device.type == "cuda" if cl == "auto" else bool(cl),
                   bool(cfg.get("compile", False)), bool(progress) and dist.is_main(),
                   bool(cfg.get("sync_bn", False)))
