"""Turn verified raw files into one tensor file: uint8 images, labels and fixed index lists.

Index lists are fixed by seed 0 and the data settings only, so every method and seed sees the same
train/val split, the same pretraining subset and the same semi-supervised label subsets.

Transfer targets (every dataset other than the pretraining one) are stored at the backbone's training
resolution (`transfer_image_size`), and their validation split is the dataset's official one where it publishes
one (`Arrays.val_idx`), else a fixed stratified VAL_FRACTION of train. Detection datasets (catalog kind
"detection") are stored as their loader's box-record index; their images stay in the extraction.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .. import digests
from ..errors import DatasetError
from ..io import load_torch, save_torch
from .catalog import get
from .kinds import is_encoded
from .shards import FORMAT
from .splits import SPLIT_SEED, balanced_subset
# What a damaged archive or gzip stream raises while a loader reads it.
CORRUPT_RAW = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, zipfile.BadZipFile, pickle.UnpicklingError,
               OSError, ValueError)

VAL_FRACTION = 0.2  # of a transfer target's train split, where the dataset publishes no validation split


def split_indices(labels: np.ndarray, val_size: int, train_subset: int, fractions: Sequence[float]) -> dict:
    n = len(labels)
    if val_size >= n:
        raise DatasetError(f"data.val_size={val_size} leaves no training images (train split has {n})")
    rng = np.random.default_rng(SPLIT_SEED)
    perm = rng.permutation(n)
    val = np.sort(perm[:val_size])
    train = np.sort(perm[val_size:])
    if train_subset and train_subset > len(train):
        # An error, not a silent cap: the report would otherwise describe a run that did not happen.
        raise DatasetError(f"data.train_subset={train_subset} is more than the {len(train)} train-split images "
                           f"({n} kept minus data.val_size={val_size}); lower it, or set 0 for all of them")
    pre = train if train_subset in (0, None) or train_subset == len(train) else np.sort(
        rng.choice(train, size=train_subset, replace=False)
    )
    semi = {str(f): balanced_subset(labels, train, f / 100.0, SPLIT_SEED + 1) for f in fractions}
    return {"train": train, "val": val, "pretrain": pre, "semi": semi}


def stratified_val(labels: np.ndarray, fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
    """A fixed validation split holding `fraction` of every class (at least one image of each class that has two).

    Multi-label targets ([N, C] labels) get a plain random `fraction`: there is no single class to stratify by.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        return np.sort(rng.permutation(len(labels))[: max(1, int(round(fraction * len(labels))))])
    picked = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) >= 2:
            picked.append(members[: max(1, int(round(fraction * len(members))))])
    if not picked:
        raise DatasetError("no class has two training images: a validation split cannot be drawn")
    return np.sort(np.concatenate(picked))


def transfer_image_size(params: Mapping) -> int:
    """The side transfer targets are stored at: eval.transfer.image_size, or else the backbone's training
    resolution (data.image_size, or the pretraining dataset's stored size), so features are extracted at the
    resolution the backbone was trained at (as the linear-transfer protocol resizes to 224 for ImageNet)."""
    size = (params.get("eval", {}).get("transfer") or {}).get("image_size")
    if size:
        return int(size)
    data = params["data"]
    if data.get("image_size"):
        return int(data["image_size"])
    if is_encoded(data["pretrain"]):
        return 224  # the encoded (JPEG) datasets' default crop (sempos.data.encoded)
    return int(get(data["pretrain"]).extras["image_size"])


def _target_splits(arrays) -> dict:
    """train/val of a transfer target: the official validation split where there is one, else stratified."""
    n = len(arrays.train_y)
    val = np.sort(np.asarray(arrays.val_idx)) if arrays.val_idx is not None else stratified_val(arrays.train_y)
    train = np.setdiff1d(np.arange(n), val)
    if len(train) == 0 or len(val) == 0:
        raise DatasetError(f"the train split ({n} images) is too small for a train/validation split")
    return {"train": train, "val": val, "pretrain": train, "semi": {}}


def _truncate(arrays, max_train: int, max_test: int):
    """Keep the first images of each split (0 keeps everything): the CPU default and smoke runs shrink the pool.

    The official files are in shuffled order, so a prefix stays close to class-balanced; the val split and
    the label subsets are then drawn class-balanced from what is kept. The test split is never cut by default.
    """
    for key, want, have in (("max_train", max_train, len(arrays.train_y)), ("max_test", max_test, len(arrays.test_y))):
        if want > have:
            raise DatasetError(f"data.{key}={want} is more than the {have} images the dataset has; lower it, or "
                               f"set 0 for all of them")
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


def _target_options(loader, size: int | None) -> dict:
    import inspect

    return {"size": int(size)} if size and "size" in inspect.signature(loader).parameters else {}


def prepare(name: str, raw_root: Path, out: Path, data_cfg: Mapping | None = None,
            target_size: int | None = None) -> Path:
    """Write data/prepared/<name>.pt. `data_cfg` (params' data section) shapes the pretraining dataset;
    `target_size` is the side other (transfer) datasets are stored at (None: the loader's default)."""
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
    if spec.kind == "detection":
        save_torch(spec.loader(raw_dir), out)
        return out
    is_pretrain = data_cfg.get("pretrain") == name
    if spec.files:
        verify_raw(raw_dir)
    options = (_loader_options(name, spec.loader, data_cfg) if is_pretrain
               else _target_options(spec.loader, target_size))
    try:
        arrays = spec.loader(raw_dir, **options)
    except DatasetError:
        raise
    except CORRUPT_RAW as exc:
        raise DatasetError(f"the raw files in {raw_dir} cannot be read ({type(exc).__name__}: {exc}); delete them "
                           f"and rerun the download stage (snakemake {raw_dir})") from None
    if is_pretrain:
        arrays = _truncate(arrays, int(data_cfg.get("max_train", 0)), int(data_cfg.get("max_test", 0)))
        splits = split_indices(arrays.train_y, val_size=int(data_cfg.get("val_size", 0)),
                               train_subset=int(data_cfg.get("train_subset", 0)),
                               fractions=data_cfg.get("semi_fractions", []))
        val_kind = "random"
    else:
        splits = _target_splits(arrays)
        val_kind = "official" if arrays.val_idx is not None else "stratified"
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
        "val_split": val_kind,  # how the validation split was drawn: random (data.val_size), official, stratified
    }
    save_torch(payload, out)
    return out


def verify_raw(raw_dir: Path) -> None:
    """Every file MANIFEST.json lists must still have the sha256 the download stage recorded.

    A truncated or edited raw file is then one error naming it, not a decoder traceback. Digests are
    remembered per file (sempos.digests), so large raw archives are hashed once, not on every prepare.
    """
    try:
        listed = json.loads((raw_dir / "MANIFEST.json").read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        raise DatasetError(f"{raw_dir}/MANIFEST.json is unreadable; rerun the download stage (snakemake {raw_dir})") \
            from None
    for fname, want in listed.items():
        f = raw_dir / fname
        if not f.is_file():
            raise DatasetError(f"{f} is missing (MANIFEST.json lists it); rerun the download stage (snakemake {raw_dir})")
        if digests.file_digest(f) != want:
            raise DatasetError(f"{f} does not match the sha256 recorded when it was downloaded (corrupt or "
                               f"truncated); delete it and rerun the download stage (snakemake {raw_dir})")


def content_sha256(data: dict) -> str:
    """sha256 over the image and label arrays, as prepare computed it (without copying the arrays)."""
    h = hashlib.sha256()
    for key in ("train_x", "train_y", "test_x", "test_y"):
        h.update(memoryview(np.ascontiguousarray(data[key].numpy())).cast("B"))
    return h.hexdigest()


def load_prepared(path: str | Path) -> dict:
    """The prepared payload, checked: an in-memory dataset against the content_sha256 it was written with;
    for encoded datasets train_x/test_x are ShardImages (shard files checked by sempos.data.encoded).

    The check costs ~25 ms for the default's 20 MB file (measured, cpu2, contended); its verdict is remembered
    per file (size, mtime, inode), so a large prepared file is hashed once, not by every job that reads it.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"prepared dataset {path} not found: run the prepare stage (snakemake {path})")
    payload = load_torch(path)
    if payload.get("format") == FORMAT:
        from .encoded import load_encoded

        return load_encoded(payload, path)
    if "train_x" not in payload:
        return payload  # a detection set's index (image paths, boxes): the job record's sha256 covers its bytes
    if not digests.verdict(path, "content_sha256_ok"):
        if "content_sha256" not in payload or content_sha256(payload) != payload["content_sha256"]:
            raise DatasetError(f"{path} fails its content_sha256 check (corrupt or edited); delete it and rerun "
                               f"the prepare stage (snakemake {path})")
        digests.remember(path, "content_sha256_ok")
    return payload
