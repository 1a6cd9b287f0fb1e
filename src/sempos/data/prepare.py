"""Turn verified raw files into one tensor file: uint8 images, labels and fixed index lists.

Index lists are fixed by seed 0 and the data settings only, so every method and seed sees the same
train/val split, the same pretraining subset and the same semi-supervised label subsets.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..errors import DatasetError
from ..io import load_torch, save_torch
from .catalog import get
from .kinds import is_encoded
from .shards import FORMAT
from .splits import SPLIT_SEED, balanced_subset


def split_indices(labels: np.ndarray, val_size: int, train_subset: int, fractions: Sequence[float]) -> dict:
    n = len(labels)
    if val_size >= n:
        raise DatasetError(f"data.val_size={val_size} leaves no training images (train split has {n})")
    rng = np.random.default_rng(SPLIT_SEED)
    perm = rng.permutation(n)
    val = np.sort(perm[:val_size])
    train = np.sort(perm[val_size:])
    pre = train if train_subset in (0, None) or train_subset >= len(train) else np.sort(
        rng.choice(train, size=train_subset, replace=False)
    )
    semi = {str(f): balanced_subset(labels, train, f / 100.0, SPLIT_SEED + 1) for f in fractions}
    return {"train": train, "val": val, "pretrain": pre, "semi": semi}


def _truncate(arrays, max_train: int, max_test: int):
    """Keep the first images of each split (0 keeps everything): the CPU default and smoke runs shrink the pool.

    The official files are in shuffled order, so a prefix stays close to class-balanced; the val split and
    the label subsets are then drawn class-balanced from what is kept. The test split is never cut by default.
    """
    tr = slice(None) if max_train <= 0 else slice(0, max_train)
    te = slice(None) if max_test <= 0 else slice(0, max_test)
    return dataclasses.replace(arrays, train_x=arrays.train_x[tr], train_y=arrays.train_y[tr],
                               test_x=arrays.test_x[te], test_y=arrays.test_y[te])


def _loader_options(name: str, loader, data_cfg: Mapping) -> dict:
    """data.unlabeled / data.image_size for the pretraining dataset, checked against what its loader offers."""
    import inspect

    accepted = inspect.signature(loader).parameters
    opts = {}
    if data_cfg.get("unlabeled"):
        if "unlabeled" not in accepted:
            raise DatasetError(f"data.unlabeled is set, but '{name}' has no unlabeled split (stl10 has one); "
                               "remove data.unlabeled")
        opts["unlabeled"] = True
    if data_cfg.get("image_size"):
        if "size" not in accepted:
            raise DatasetError(f"data.image_size is set, but '{name}' is stored at its native size only; "
                               "remove data.image_size")
        opts["size"] = int(data_cfg["image_size"])
    return opts


def _append_unlabeled(arrays, splits: dict):
    """Unlabeled images join the end of the train arrays with label -1, and the pretraining split only.

    train/val/semi stay labelled-only, so kNN banks, probes and fine-tuning never see a -1; the diagnostics
    that read pretraining labels (pair precision, bank purity, oracle pairs) skip unknown labels.
    """
    n = len(arrays.train_y)
    ux = arrays.unlabeled_x
    train_x = np.concatenate([arrays.train_x, ux])
    train_y = np.concatenate([arrays.train_y, np.full(len(ux), -1, dtype=np.int64)])
    splits = {**splits, "pretrain": np.concatenate([splits["pretrain"], np.arange(n, n + len(ux))])}
    return dataclasses.replace(arrays, train_x=train_x, train_y=train_y, unlabeled_x=None), splits


def prepare(name: str, raw_root: Path, out: Path, data_cfg: Mapping | None = None) -> Path:
    data_cfg = dict(data_cfg or {})
    if is_encoded(name):
        from .encoded import prepare_encoded

        # data/raw/<ds>/ (download's record) and data/shards/<ds>.pt (the pack stage's manifest).
        return prepare_encoded(name, Path(raw_root) / name, Path(raw_root).parent / "shards" / f"{name}.pt", out,
                               data_cfg)
    spec = get(name)
    raw_dir = raw_root / name
    if spec.files and not (raw_dir / "MANIFEST.json").exists():
        raise DatasetError(f"{raw_dir}/MANIFEST.json missing: run the download stage for '{name}' first")
    is_pretrain = data_cfg.get("pretrain") == name
    arrays = spec.loader(raw_dir, **(_loader_options(name, spec.loader, data_cfg) if is_pretrain else {}))
    if is_pretrain:
        arrays = _truncate(arrays, int(data_cfg.get("max_train", 0)), int(data_cfg.get("max_test", 0)))
    splits = split_indices(
        arrays.train_y,
        val_size=int(data_cfg.get("val_size", 0)) if is_pretrain else int(0.2 * len(arrays.train_y)),
        train_subset=int(data_cfg.get("train_subset", 0)) if is_pretrain else 0,
        fractions=data_cfg.get("semi_fractions", []) if is_pretrain else [],
    )
    if is_pretrain and arrays.unlabeled_x is not None:
        arrays, splits = _append_unlabeled(arrays, splits)
    h = hashlib.sha256()
    for arr in (arrays.train_x, arrays.train_y, arrays.test_x, arrays.test_y):
        h.update(np.ascontiguousarray(arr).tobytes())
    payload = {
        "name": name,
        "classes": list(arrays.classes),
        "train_x": torch.from_numpy(np.ascontiguousarray(arrays.train_x)),
        "train_y": torch.from_numpy(arrays.train_y),
        "test_x": torch.from_numpy(np.ascontiguousarray(arrays.test_x)),
        "test_y": torch.from_numpy(arrays.test_y),
        "splits": {
            "train": torch.from_numpy(splits["train"]),
            "val": torch.from_numpy(splits["val"]),
            "pretrain": torch.from_numpy(splits["pretrain"]),
            "semi": {k: torch.from_numpy(v) for k, v in splits["semi"].items()},
        },
        "content_sha256": h.hexdigest(),
    }
    save_torch(payload, out)
    return out


def load_prepared(path: str | Path) -> dict:
    """The prepared payload; for encoded datasets train_x/test_x are ShardImages (shard files checked)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"prepared dataset {path} not found: run the prepare stage (snakemake {path})")
    payload = load_torch(path)
    if payload.get("format") == FORMAT:
        from .encoded import load_encoded

        return load_encoded(payload, path)
    return payload
