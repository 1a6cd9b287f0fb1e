"""Encoded (JPEG) datasets through the DAG: download (verify the manual copy), pack (shards), prepare (index).

  download  data.root checked in place (archive md5s, or the tree's classes), SimCLR's 1 %/10 % lists fetched
            for ImageNet; data/raw/<ds>/MANIFEST.json records what was found. Nothing is copied.
  pack      the listing -> data/shards/<ds>/*.bin + the pack manifest data/shards/<ds>.pt (sempos.data.pack).
  prepare   data/prepared/<ds>.pt: the shard tables, labels, splits (val held out of train, pretraining subset,
            1 %/10 % label subsets) and the crop / resize / normalisation settings; loading it gives
            sempos.data.shards.ShardImages where in-memory datasets give uint8 tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from ..io import load_torch, save_json, save_torch
from . import ilsvrc
from .kinds import DEFAULT_ROOTS, ENCODED, SUBSET_LISTS
from .pack import PackSettings, pack_split
from .shards import FORMAT, IMAGENET_MEAN, IMAGENET_STD, ShardImages, ShardTable

log = logging.getLogger(__name__)
NORM_SAMPLE = 2000  # images whose eval crops give an image folder's mean/std


def source_root(name: str, data_cfg: Mapping) -> Path:
    root = data_cfg.get("root") if data_cfg.get("pretrain") == name else None
    return Path(root or DEFAULT_ROOTS[name])


def _check_outside(root: Path, raw_dir: Path) -> None:
    r, d = root.resolve(), raw_dir.resolve()
    if r == d or d in r.parents:
        raise ConfigError(f"data.root {root} lies inside {raw_dir}, the download stage's output, which Snakemake "
                          f"and DVC delete before rerunning it. Keep the images elsewhere (e.g. data/{root.name}) "
                          "and point data.root there")


def check_source(name: str, raw_dir: Path, data_cfg: Mapping) -> Path:
    """The download stage for an encoded dataset: verify the copy at data.root, fetch the subset lists."""
    root = source_root(name, data_cfg)
    raw_dir = Path(raw_dir)
    _check_outside(root, raw_dir)
    info: dict = {"dataset": name, "root": str(root.resolve())}
    if name in ("imagenet", "imagenet100"):
        info["layout"] = ilsvrc.layout(root)
        if info["layout"] == "archives":
            info["archives"] = ilsvrc.verify_archives(root)
        elif name == "imagenet100":
            missing = [w for w in ilsvrc.imagenet100_classes() if not (root / "train" / w).is_dir()]
            if missing:
                raise DatasetError(f"{root / 'train'} lacks {len(missing)} of the ImageNet-100 classes, e.g. "
                                   f"{missing[:3]}.\n" + ilsvrc.manual_steps(root))
    elif not root.is_dir():
        raise DatasetError(f"data.root {root} does not exist: point it at a folder of class folders "
                           "(root/<class>/*.jpg, or root/train/<class>/ with an optional root/val/<class>/)")
    else:
        info["layout"] = "folders"
    lists = {}
    if name in SUBSET_LISTS:
        from .imagenet_subsets import fetch_subset_list

        for f in data_cfg.get("semi_fractions", []) if data_cfg.get("pretrain") == name else []:
            path = fetch_subset_list(f, raw_dir)
            lists[str(f)] = path.name
    info["subset_lists"] = lists
    manifest = raw_dir / "MANIFEST.json"
    save_json(info, manifest)
    return manifest


def _listing(name: str, root: Path) -> ilsvrc.Listing:
    if name in ("imagenet", "imagenet100"):
        return ilsvrc.imagenet_listing(root, name)
    return ilsvrc.folder_listing(root)


def _raw_manifest(raw_dir: Path) -> dict:
    path = Path(raw_dir) / "MANIFEST.json"
    if not path.is_file():
        raise DatasetError(f"{path} missing: run the download stage for this dataset first")
    return json.loads(path.read_text())


def pack_dataset(name: str, raw_dir: Path, out: Path, pack_cfg: Mapping | None, workers: int = 0) -> Path:
    """Pack the dataset that the download stage verified; out = data/shards/<ds>.pt, shards beside it."""
    info = _raw_manifest(raw_dir)
    settings = PackSettings.from_cfg(pack_cfg)
    listing = _listing(name, Path(info["root"]))
    if not listing.train or not listing.test:
        raise DatasetError(f"{info['root']}: found {len(listing.train)} train and {len(listing.test)} test images; "
                           "both splits need images")
    out = Path(out)
    shard_dir = out.with_suffix("")
    fix = ("Fix: the archive passed its md5, so re-download it if it changed since, else report it"
           if info.get("layout") == "archives" else
           "Fix: replace the file with a good copy, or delete it from the tree, then rerun the pack stage")
    tables, summary = {}, {}
    for split, items in (("train", listing.train), ("test", listing.test)):
        table, summary[split] = pack_split(items, split, shard_dir, settings, workers, fix)
        tables[split] = table.to_dict()
    labels = {s: torch.tensor([it.label for it in items], dtype=torch.int64)
              for s, items in (("train", listing.train), ("test", listing.test))}
    blob = {"format": FORMAT, "dataset": name, "classes": listing.classes, "shard_dir": shard_dir.name,
            "settings": {"max_side": settings.max_side, "quality": settings.quality,
                         "shard_images": settings.shard_images},
            "splits": tables, "labels": labels, "source": listing.source, "summary": summary}
    save_torch(blob, out)
    return out


# --- prepare ----------------------------------------------------------------------------------------------------


def _semi_from_lists(name: str, raw_dir: Path, fractions, names: list[str], classes: list[str]) -> dict:
    from .imagenet_subsets import read_subset_list, subset_indices

    out = {}
    info = _raw_manifest(raw_dir)
    wanted = set(classes)
    for f in fractions:
        fname = info.get("subset_lists", {}).get(str(f))
        if fname is None:
            raise DatasetError(f"the {f}% subset list was not fetched by the download stage (data/raw/{name}/); "
                               f"rerun it with {f} in data.semi_fractions")
        listed = read_subset_list(Path(raw_dir) / fname, f)
        # ImageNet-100 keeps the list's images of its own classes (about 1 % / 10 % of it again).
        listed = [n for n in listed if n.split("_")[0] in wanted]
        out[str(f)] = subset_indices(listed, names)
    return out


def _fit_norm(images: ShardImages) -> tuple[list[float], list[float]]:
    from .loader import eval_batches

    n = len(images)
    pick = np.unique(np.linspace(0, n - 1, num=min(n, NORM_SAMPLE)).round().astype(np.int64))
    s1 = torch.zeros(3, dtype=torch.float64)
    s2 = torch.zeros(3, dtype=torch.float64)
    count = 0
    for x in eval_batches(images[pick], 256, torch.device("cpu")):
        xf = x.double() / 255.0
        s1 += xf.sum((0, 2, 3))
        s2 += (xf ** 2).sum((0, 2, 3))
        count += xf.shape[0] * xf.shape[2] * xf.shape[3]
    mean = s1 / count
    std = (s2 / count - mean ** 2).clamp(min=1e-6).sqrt().clamp(min=1e-3)
    return mean.tolist(), std.tolist()


def prepare_encoded(name: str, raw_dir: Path, pack_manifest: Path, out: Path, data_cfg: Mapping) -> Path:
    from .jpeg import eval_resize_for
    from .splits import SPLIT_SEED, balanced_subset

    data_cfg = dict(data_cfg or {})
    if not Path(pack_manifest).is_file():
        raise DatasetError(f"{pack_manifest} missing: run the pack stage for '{name}' first")
    is_pretrain = data_cfg.get("pretrain") == name
    if is_pretrain and (int(data_cfg.get("max_train", 0)) or int(data_cfg.get("max_test", 0))):
        raise ConfigError(f"data.max_train / data.max_test cut in-memory datasets only; '{name}' streams from "
                          "shards. Set them to 0 (use data.train_subset for a smaller pretraining set)")
    packed = load_torch(pack_manifest)
    if packed.get("format") != FORMAT:
        raise DatasetError(f"{pack_manifest} is not a sempos shard manifest; rerun the pack stage")
    root = Path(pack_manifest).parent / packed["shard_dir"]
    train_t = ShardTable.from_dict(packed["splits"]["train"], root)
    y = packed["labels"]["train"].numpy()
    n = len(y)
    rng = np.random.default_rng(SPLIT_SEED)
    fractions = data_cfg.get("semi_fractions", []) if is_pretrain else []
    if name in SUBSET_LISTS:
        semi = _semi_from_lists(name, raw_dir, fractions, train_t.names(), packed["classes"])
    else:
        semi = None
    val_size = int(data_cfg.get("val_size", 0)) if is_pretrain else int(0.2 * n)
    # The validation images come from outside the label subsets, so choosing the fine-tuning lr never looks at
    # images it trained on (SimCLR's lists are fixed; the held-out part must avoid them).
    in_lists = np.zeros(n, bool)
    for idx in (semi or {}).values():
        in_lists[idx] = True
    pool = np.flatnonzero(~in_lists)
    if val_size > len(pool):
        raise DatasetError(f"data.val_size={val_size} exceeds the {len(pool)} train images outside the label subsets")
    val = np.sort(rng.choice(pool, size=val_size, replace=False)) if val_size else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(n), val)
    sub = int(data_cfg.get("train_subset", 0)) if is_pretrain else 0
    pre = train if sub in (0, None) or sub >= len(train) else np.sort(rng.choice(train, size=sub, replace=False))
    if semi is None:
        semi = {str(f): balanced_subset(y, train, f / 100.0, SPLIT_SEED + 1) for f in fractions}
    crop = int(data_cfg.get("image_size") or 224) if is_pretrain else 224
    resize = int(data_cfg.get("eval_resize") or eval_resize_for(crop)) if is_pretrain else eval_resize_for(crop)
    if resize < crop:
        raise ConfigError(f"data.eval_resize {resize} is smaller than the crop data.image_size {crop}")
    if name in ("imagenet", "imagenet100"):
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    else:
        mean, std = _fit_norm(ShardImages(train_t, pre, crop, resize))
    h = hashlib.sha256()
    for split in ("train", "test"):
        h.update("".join(packed["splits"][split]["sha256"]).encode())
        h.update(packed["labels"][split].numpy().tobytes())
    # Relative to the index, so a moved or copied data/ folder keeps working.
    rel = os.path.relpath(root.resolve(), Path(out).resolve().parent)
    payload = {
        "name": name, "format": FORMAT, "classes": list(packed["classes"]), "shard_dir": str(rel),
        "train_x": packed["splits"]["train"], "train_y": packed["labels"]["train"],
        "test_x": packed["splits"]["test"], "test_y": packed["labels"]["test"],
        "splits": {"train": torch.from_numpy(train), "val": torch.from_numpy(val), "pretrain": torch.from_numpy(pre),
                   "semi": {k: torch.from_numpy(np.asarray(v, np.int64)) for k, v in semi.items()}},
        "image_size": crop, "eval_resize": resize, "norm_mean": mean, "norm_std": std,
        "content_sha256": h.hexdigest(),
    }
    save_torch(payload, out)
    return out


def load_encoded(payload: dict, path: Path) -> dict:
    """A prepared index with its tables turned into ShardImages (shard files checked)."""
    from .shards import images_of

    return {**payload, "train_x": images_of(payload, path, "train"), "test_x": images_of(payload, path, "test")}


def is_encoded_payload(payload: Mapping) -> bool:
    return payload.get("format") == FORMAT


__all__ = ["ENCODED", "check_source", "load_encoded", "pack_dataset", "prepare_encoded"]
