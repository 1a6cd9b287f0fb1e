"""Backbone state dict (torchvision names) -> Detectron2 names, as MoCo's convert-pretrain-to-detectron2.py.

  conv1 / bn1                      -> stem.conv1 / stem.conv1.norm
  layer{N}.{i}.conv{K} / .bn{K}    -> res{N+1}.{i}.conv{K} / res{N+1}.{i}.conv{K}.norm
  layer{N}.{i}.downsample.0 / .1   -> res{N+1}.{i}.shortcut / res{N+1}.{i}.shortcut.norm
BN weight/bias/running_mean/running_var keep their suffixes (Detectron2's BatchNorm2d, naiveSyncBN and
FrozenBatchNorm2d use the same four names); num_batches_tracked is kept like MoCo's script does (it
exists in Detectron2's BN/SyncBN models, FrozenBN ignores it) unless asked otherwise.

The .pkl holds numpy arrays under "model" with "matching_heuristics": True, which tells Detectron2's
checkpointer to match names by suffix: that is how the checkpoint's "res5.*" reaches the C4 model's
"roi_heads.res5.*". Unlike MoCo's string replaces, unknown keys raise instead of becoming "stem.<key>".
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..io import atomic_path, load_torch
from .errors import ConversionError

BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")
# Blocks per stage (layer1..layer4 = res2..res5) and convolutions per block.
LAYOUTS = {
    "resnet18": ((2, 2, 2, 2), 2),
    "resnet18_cifar": ((2, 2, 2, 2), 2),
    "resnet50": ((3, 4, 6, 3), 3),
}
HEAD_PREFIXES = ("fc.",)  # classifier heads are not part of a detection backbone: dropped, as MoCo's ignores them

_STEM = re.compile(r"^(conv1|bn1)\.(\w+)$")
_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(\w+)$")


def detectron2_name(key: str) -> str:
    """The Detectron2 name of one torchvision-style ResNet key; ConversionError if it is not a ResNet key."""
    m = _STEM.match(key)
    if m:
        return f"stem.conv1.{m.group(2)}" if m.group(1) == "conv1" else f"stem.conv1.norm.{m.group(2)}"
    m = _BLOCK.match(key)
    if m:
        stage, block, part, leaf = m.groups()
        prefix = f"res{int(stage) + 1}.{block}"
        if part.startswith("conv"):
            return f"{prefix}.{part}.{leaf}"
        if part.startswith("bn"):
            return f"{prefix}.conv{part[2]}.norm.{leaf}"
        return f"{prefix}.shortcut.{leaf}" if part == "downsample.0" else f"{prefix}.shortcut.norm.{leaf}"
    raise ConversionError(f"cannot map backbone key {key!r} to Detectron2: expected conv1/bn1/layerN.i.(convK|bnK|"
                          f"downsample.0|downsample.1).*; is this a ResNet backbone.pt?")


def convert_state_dict(state: Mapping[str, torch.Tensor], num_batches_tracked: bool = True) -> dict[str, np.ndarray]:
    """{detectron2 name: numpy array} for every backbone parameter and buffer (fc.* dropped)."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if key.startswith(HEAD_PREFIXES) or (not num_batches_tracked and key.endswith("num_batches_tracked")):
            continue
        name = detectron2_name(key)
        if name in out:
            raise ConversionError(f"two backbone keys map to the Detectron2 name {name!r}")
        out[name] = value.detach().cpu().numpy()
    return out


def save_detectron2_pkl(model: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Write Detectron2's weight format: {"model", "__author__", "matching_heuristics": True}."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump({"model": dict(model), "__author__": "sempos", "matching_heuristics": True}, f)
    return path


def convert_checkpoint(backbone_path: str | Path, out_path: str | Path | None = None,
                       num_batches_tracked: bool = True) -> dict[str, np.ndarray]:
    """Convert a pretrain stage's backbone.pt (or a bare state dict file); write the .pkl if `out_path`."""
    blob = load_torch(backbone_path)
    state = blob["state_dict"] if isinstance(blob, Mapping) and "state_dict" in blob else blob
    model = convert_state_dict(state, num_batches_tracked)
    if out_path is not None:
        save_detectron2_pkl(model, out_path)
    return model


def expected_detectron2_keys(arch: str, num_batches_tracked: bool = True) -> set[str]:
    """Every parameter/buffer name of Detectron2's ResNet (stem + res2..res5) for `arch`, as built by
    build_resnet_backbone with torchvision-style blocks (R18: BasicBlock, R50: BottleneckBlock).
    A shortcut exists where Detectron2 makes one: the first block of each stage whose input and output
    channels differ (every stage but res2 for R18; every stage for R50)."""
    if arch not in LAYOUTS:
        raise ConversionError(f"no Detectron2 layout for arch {arch!r}; known: {sorted(LAYOUTS)}")
    blocks, convs = LAYOUTS[arch]
    bn = list(BN_SUFFIXES) + (["num_batches_tracked"] if num_batches_tracked else [])
    keys = {"stem.conv1.weight"} | {f"stem.conv1.norm.{s}" for s in bn}
    for stage, n in enumerate(blocks, start=2):
        for i in range(n):
            names = [f"res{stage}.{i}.conv{k}" for k in range(1, convs + 1)]
            if i == 0 and (convs == 3 or stage > 2):
                names.append(f"res{stage}.{i}.shortcut")
            for name in names:
                keys.add(f"{name}.weight")
                keys |= {f"{name}.norm.{s}" for s in bn}
    return keys
