"""Turn a method's `positives` entry into the trainer's pair source and SePP partner index.

  source   augment (default) | mined | oracle | random | study_s | study_a | study_a2 | study_m
  mix      add (SePP-ID: augmented pairs + extra pairs) | replace (the dataset study)
  variant  P (pair list, default) | M (multi-positive loss over in-batch partners; augmented pairs only)
The study sets always replace the augmented pairs and have the same classes and pair count.
  match_steps  (source augment only) the compute-matched host of the named variant: augmented pairs only,
           cycled to the variant's pairs per epoch, so the same epochs and lr schedule give the same
           number of optimiser steps (docs/science.md §1.2, compute parity)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import pairsets
from .partners import PartnerIndex
from ..mining.sampler import DUP_THRESHOLD, pair_precision, read_pairs
from .pairs import PairSource

DEFAULTS = {"source": "augment", "mix": "add", "variant": "P", "mask_partners": False, "equal_steps": False,
            "count": 0, "pairs_per_class": 100, "dup_threshold": DUP_THRESHOLD, "match_steps": None}
MINED_SOURCES = ("mined", "study_m")
STUDY_SOURCES = ("study_s", "study_a", "study_a2", "study_m")


def positives_cfg(hp: Mapping) -> dict:
    return {**DEFAULTS, **(hp.get("positives") or {})}


@dataclass
class Positives:
    pairs: PairSource
    partners: PartnerIndex | None = None
    report: dict = field(default_factory=dict)


def pixel_features(images_u8: torch.Tensor) -> torch.Tensor:
    """A fixed, training-free extractor for near-duplicate rejection: centred, normalised pixels."""
    x = images_u8.flatten(1).float()
    return F.normalize(x - x.mean(1, keepdim=True), dim=1)


def labelled_pool(data: dict) -> torch.Tensor:
    """The pretraining images that carry a label: sources built from labels never pair unlabeled (-1) images."""
    pool = torch.as_tensor(data["splits"]["pretrain"]).long()
    return pool[torch.as_tensor(data["train_y"])[pool] >= 0]


def _study_S(cfg: dict, data: dict, seed: int) -> torch.Tensor:
    from ..data.shards import is_encoded

    if is_encoded(data["train_x"]):
        raise ConfigError("the study pair sets (study_s/a/a2/m) reject near-duplicates by raw pixels, which needs "
                          "an in-memory dataset; on JPEG datasets use positives source mined, oracle or random")
    pool = labelled_pool(data)
    feats_pool = pixel_features(data["train_x"][pool])
    feats = torch.zeros(len(data["train_x"]), feats_pool.shape[1])
    feats[pool] = feats_pool
    return pairsets.build_S(data["train_y"], pool, cfg["pairs_per_class"], seed, feats, cfg["dup_threshold"])


def build_positives(hp: Mapping, data: dict, seed: int, pairs_file: Path | None = None,
                    match: PairSource | None = None) -> Positives:
    """`match`: for a compute-matched control (positives.match_steps), the variant's own pair source."""
    cfg = positives_cfg(hp)
    src = cfg["source"]
    pool = data["splits"]["pretrain"]
    labels = data["train_y"]
    if cfg["match_steps"] is not None:
        if src != "augment":
            raise ConfigError(f"positives.match_steps needs source augment (a control trains on augmented pairs "
                              f"only), not '{src}'")
        if match is None:
            raise ConfigError(f"positives.match_steps '{cfg['match_steps']}': the variant's pair source is needed "
                              f"to size the control; build it first (the pretrain stage does)")
        ps = PairSource(pool, pairs_per_epoch=len(match))
        return Positives(ps, report={"source": "augment", "match_steps": cfg["match_steps"], "num_pairs": len(ps),
                                     "augmented_pairs": len(pool)})
    if src == "augment":
        return Positives(PairSource(pool), report={"source": "augment", "num_pairs": len(pool)})
    if src in MINED_SOURCES:
        if pairs_file is None or not Path(pairs_file).exists():
            raise ConfigError(f"positives source '{src}' needs the mine stage's pair file ({pairs_file}); "
                              f"run the DAG (snakemake) so `mine` runs first")
        extra, _ = read_pairs(pairs_file)
    elif src in ("oracle", "random"):
        count = int(cfg["count"]) or len(pool)
        extra = (pairsets.oracle_pairs(labels, labelled_pool(data), count, seed) if src == "oracle"
                 else pairsets.random_pairs(pool, count, seed))
    elif src not in STUDY_SOURCES:
        raise ConfigError(f"unknown positives source '{src}'")

    if src in STUDY_SOURCES:
        S = _study_S(cfg, data, seed)
        epoch_extra = None
        if src == "study_s":
            extra = S
        elif src == "study_a":
            extra = pairsets.build_A(S)
        elif src == "study_a2":
            extra, epoch_extra = None, pairsets.A2Sampler(S)
        else:
            extra = pairsets.build_M(extra, labels, S, seed)
        ps = PairSource(pool, extra, mix="replace", epoch_extra=epoch_extra)
        shown = extra if extra is not None else epoch_extra.for_epoch(seed, 0)
        return Positives(ps, report={"source": src, "num_pairs": len(ps), "pair_precision": pair_precision(shown, labels),
                                     "distinct_images": int(torch.unique(shown.flatten()).numel())})

    partners = PartnerIndex(extra, len(labels)) if (cfg["variant"] == "M" or cfg["mask_partners"]) else None
    if cfg["variant"] == "M":
        ps = PairSource(pool, equal_steps=cfg["equal_steps"])  # in-batch partners become extra positives
    else:
        ps = PairSource(pool, extra, mix=cfg["mix"], equal_steps=cfg["equal_steps"])
    return Positives(ps, partners, report={"source": src, "mix": cfg["mix"], "variant": cfg["variant"],
                                           "extra_pairs": int(len(extra)), "num_pairs": len(ps),
                                           "pair_precision": pair_precision(extra, labels)})
