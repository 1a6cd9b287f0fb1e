"""Semi-supervised evaluation: fine-tune the WHOLE network (backbone + a new linear head) on a labelled subset.

Two recipes (docs/science.md §4.3), chosen by name:

  simclr     SimCLR / BYOL (Chen et al. 2020, appendix B.5): Nesterov SGD (momentum 0.9), random resized crop +
             horizontal flip only, no weight decay, cosine decay per step without warm-up; about 60 epochs for
             1 % labels and 30 for 10 %; the lr is swept over `lr_grid`.
  mmselfsup  mmselfsup / OpenSelfSup benchmarks (configs/benchmarks/classification/imagenet/imagenet_*percent):
             SGD (momentum 0.9, weight decay 5e-4), 20 epochs, backbone lr from `lr_grid` x head lr multiplier
             from `head_mult` ({0.1, 0.01, 0.001} x {1, 10, 100}), lr x0.2 at epochs 12 and 16 of 20
             (the steps scale with `epochs`: 60 % and 80 % of training).

Learning rates are given for a batch of 256 images and scaled linearly to `batch_size`, as both recipes (and
this repo's pretraining optimiser) define them.

Every grid point trains from the same pretrained weights with the same seed. The grid point is chosen by
last-epoch top-1 on the validation split; the test split is read exactly once, by the chosen model, after
selection. Reported numbers are the chosen model's last-epoch top-1/top-5 on the full test split.

Determinism: data order and augmentation are pure functions of (seed, epoch, step); on CPU two runs give
identical numbers. Augmentation runs batched on the data's device; on CUDA the forward pass uses bf16 autocast.
Encoded (JPEG) images are cropped and flipped at decode time against each image's own size
(sempos.data.loader) and scored with the test-time transform (resize + central crop).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F

from ..augment import AugmentSpec, Normalizer, augment_batch, augment_crops, eval_batch
from ..data.shards import is_encoded
from ..errors import ConfigError, DatasetError, NonFiniteLossError
from .features import eval_views
from .knn import topk_accuracy

# Recipe defaults; any of them can be overridden through `cfg` (see RECIPE_KEYS).
RECIPES: dict[str, dict] = {
    "simclr": {
        "lr_grid": [0.01, 0.05, 0.1],      # per 256 images; SimCLR used 0.05 x bs/256, BYOL swept a small grid
        "head_mult": [1.0],                 # SimCLR has no separate head lr
        "batch_size": 256,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.0,                # "We do not use any regularization (including weight decay)"
        "schedule": "cosine",               # SimCLR's WarmUpAndCosineDecay with 0 warm-up epochs, per step
        "crop_scale": [0.08, 1.0],          # Inception-style crop, as SimCLR's random_crop_with_resize
        "flip_p": 0.5,
    },
    "mmselfsup": {
        "lr_grid": [0.1, 0.01, 0.001],
        "head_mult": [1.0, 10.0, 100.0],
        "batch_size": 256,                  # 4 GPUs x 64 in the benchmark configs
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 5e-4,
        "schedule": "step",
        "lr_steps": [0.6, 0.8],             # epochs 12 and 16 of 20, as fractions of training
        "lr_gamma": 0.2,                    # mmcv step policy, gamma=0.2 in the benchmark configs
        "crop_scale": [0.08, 1.0],
        "flip_p": 0.5,
    },
}
RECIPE_KEYS = frozenset(k for r in RECIPES.values() for k in r) | {"epochs", "lr_steps", "lr_gamma", "eval_batch_size"}
# Keys of the stage's eval.semisup section that are not fine-tuning hyper-parameters (the stage reads them).
STAGE_KEYS = frozenset({"recipe", "fractions"})
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class Recipe:
    name: str
    lr_grid: tuple[float, ...]
    head_mult: tuple[float, ...]
    batch_size: int
    momentum: float
    nesterov: bool
    weight_decay: float
    schedule: str
    lr_steps: tuple[float, ...]
    lr_gamma: float
    crop_scale: tuple[float, float]
    flip_p: float
    eval_batch_size: int

    @property
    def augment(self) -> AugmentSpec:
        # Crop + flip only: every colour / blur / solarize operation off.
        return AugmentSpec(crop_scale=self.crop_scale, flip_p=self.flip_p, jitter_p=0.0, grayscale_p=0.0,
                           blur_p=0.0, solarize_p=0.0)

    def grid(self) -> list[tuple[float, float]]:
        return [(lr, m) for lr, m in itertools.product(self.lr_grid, self.head_mult)]


def default_epochs(recipe: str, labelled_percent: float) -> int:
    """The recipe's epoch count: mmselfsup 20; SimCLR 60 for ~1 % labels and 30 for ~10 % (cut at 5 %)."""
    if recipe == "mmselfsup":
        return 20
    return 60 if labelled_percent <= 5.0 else 30


def resolve_recipe(recipe: str, cfg: Mapping | None) -> Recipe:
    """Recipe defaults overridden by `cfg`; unknown names and keys fail here, naming the fix."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown fine-tuning recipe '{recipe}'; choose one of {sorted(RECIPES)}")
    cfg = dict(cfg or {})
    unknown = set(cfg) - RECIPE_KEYS - STAGE_KEYS
    if unknown:
        raise ConfigError(f"eval.semisup: unknown key(s) {sorted(unknown)}; known: {sorted(RECIPE_KEYS | STAGE_KEYS)}")
    merged = {**RECIPES[recipe], **{k: v for k, v in cfg.items() if k in RECIPE_KEYS and k != "epochs"}}
    lr_grid = tuple(float(x) for x in merged["lr_grid"])
    head_mult = tuple(float(x) for x in merged["head_mult"])
    if not lr_grid or any(not (lr > 0 and math.isfinite(lr)) for lr in lr_grid):
        raise ConfigError(f"eval.semisup.lr_grid must be a non-empty list of positive numbers, got {merged['lr_grid']}")
    if not head_mult or any(m <= 0 for m in head_mult):
        raise ConfigError(f"eval.semisup.head_mult must be a non-empty list of positive numbers, "
                          f"got {merged['head_mult']}")
    if recipe == "simclr" and head_mult != (1.0,):
        raise ConfigError("eval.semisup.head_mult applies to the mmselfsup recipe only; the simclr recipe trains "
                          "head and backbone at one lr. Set head_mult: [1.0] or recipe: mmselfsup")
    if merged["schedule"] not in SCHEDULES:
        raise ConfigError(f"eval.semisup.schedule '{merged['schedule']}' unknown; choose one of {SCHEDULES}")
    steps = tuple(float(s) for s in merged.get("lr_steps", ()))
    if any(not 0 < s < 1 for s in steps):
        raise ConfigError(f"eval.semisup.lr_steps are fractions of training in (0, 1), got {list(steps)}")
    crop = tuple(float(x) for x in merged["crop_scale"])
    if len(crop) != 2 or not 0 < crop[0] <= crop[1] <= 1:
        raise ConfigError(f"eval.semisup.crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got {list(crop)}")
    if int(merged["batch_size"]) < 2:
        raise ConfigError("eval.semisup.batch_size must be at least 2 (batch norm trains on the batch)")
    return Recipe(recipe, lr_grid, head_mult, int(merged["batch_size"]), float(merged["momentum"]),
                  bool(merged["nesterov"]), float(merged["weight_decay"]), merged["schedule"], steps,
                  float(merged.get("lr_gamma", 0.1)), crop, float(merged["flip_p"]),
                  int(merged.get("eval_batch_size", 512)))


def lr_factor(recipe: Recipe, epoch: int, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of the base lr at (epoch, step): cosine per step, step decay per epoch, or constant."""
    if recipe.schedule == "cosine":
        progress = (epoch * steps_per_epoch + step) / max(1, epochs * steps_per_epoch)
        return 0.5 * (1 + math.cos(math.pi * progress))
    if recipe.schedule == "step":
        milestones = [round(f * epochs) for f in recipe.lr_steps]
        return recipe.lr_gamma ** sum(epoch >= m for m in milestones)
    return 1.0


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _generator(device: torch.device, seed: int, epoch: int, step: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(_seed(seed, epoch, step))
    return g


def _seed(seed: int, epoch: int, step: int) -> int:
    return (seed * 1_000_003 + epoch * 100_003 + step * 7 + 4242) % (2**63)


def crop_views(images, order: torch.Tensor, bs: int, steps: int, aug: AugmentSpec, size: int, seed: int,
               epoch: int, device: torch.device, norm: Normalizer):
    """Normalised RRC + flip views of images[order[step * bs:(step + 1) * bs]] for each step of an epoch.

    Tensors are cropped batched on the device; encoded images at decode time (the crop boxes drawn on the
    CPU from the same per-step seed). Colour operations of `aug` apply either way (off in both recipes here).
    """
    if is_encoded(images):
        from ..data.jpeg import CropSpec
        from ..data.loader import crop_stream

        plan = ((_seed(seed, epoch, step), order[step * bs:(step + 1) * bs].cpu()) for step in range(steps))
        for step, crops in enumerate(crop_stream(images, plan, CropSpec.of(aug), size, device)):
            yield augment_crops(crops, aug, _generator(device, seed, epoch, step), norm)
        return
    for step in range(steps):
        idx = order[step * bs:(step + 1) * bs]
        yield augment_batch(images[idx], aug, size, _generator(device, seed, epoch, step), norm)


@torch.no_grad()
def predict(backbone: torch.nn.Module, head: torch.nn.Module, images_u8: torch.Tensor, norm: Normalizer,
            device: torch.device, batch: int = 512) -> torch.Tensor:
    """Class scores (float32, on `device`) of un-augmented images; the network is put in eval mode."""
    backbone.eval()
    head.eval()
    out = []
    for x_u8 in eval_views(images_u8, batch, device):
        x = eval_batch(x_u8, norm)
        with _autocast(device):
            out.append(head(backbone(x)).float())
    return torch.cat(out)


def train_one(backbone0: torch.nn.Module, norm: Normalizer, images_u8: torch.Tensor, labels: torch.Tensor,
              train_idx: torch.Tensor, num_classes: int, recipe: Recipe, epochs: int, lr: float, head_mult: float,
              seed: int, device: torch.device):
    """Fine-tune a copy of `backbone0` plus a fresh linear head; returns (backbone, head) or None if it diverged."""
    torch.manual_seed(seed)
    backbone = copy.deepcopy(backbone0).to(device)
    for p in backbone.parameters():
        p.requires_grad_(True)  # the whole network trains, even if the caller froze it for probing
    head = torch.nn.Linear(backbone.feat_dim, num_classes).to(device)
    torch.nn.init.normal_(head.weight, std=0.01)  # mmselfsup ClsHead init; bias 0
    torch.nn.init.zeros_(head.bias)
    bs = min(recipe.batch_size, len(train_idx))
    scale = bs / 256  # lrs are per 256 images
    groups = [{"params": list(backbone.parameters()), "lr": lr * scale},
              {"params": list(head.parameters()), "lr": lr * head_mult * scale}]
    opt = torch.optim.SGD(groups, lr=lr * scale, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    # Only the labelled images move to the device (encoded ones are streamed); indices below are positions in
    # this subset.
    imgs = images_u8[train_idx] if is_encoded(images_u8) else images_u8[train_idx].to(device)
    ys = labels[train_idx].to(device)
    size = imgs.crop_size if is_encoded(imgs) else int(imgs.shape[-1])
    aug = recipe.augment
    steps = len(train_idx) // bs  # drop_last: every step sees a full batch (batch norm statistics)
    for epoch in range(epochs):
        backbone.train()
        head.train()
        order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed * 997 + epoch))
        order = order.to(device)
        views = crop_views(imgs, order, bs, steps, aug, size, seed, epoch, device, norm)
        for step in range(steps):
            f = lr_factor(recipe, epoch, step, steps, epochs)
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * f
            idx = order[step * bs:(step + 1) * bs]
            x = next(views)
            with _autocast(device):
                logits = head(backbone(x))
            loss = F.cross_entropy(logits.float(), ys[idx])
            if not torch.isfinite(loss):
                return None
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return backbone, head


def _check_indices(train_idx: torch.Tensor, val_idx: torch.Tensor, n: int) -> None:
    if len(train_idx) < 2:
        raise DatasetError(f"fine-tuning needs at least 2 labelled images, got {len(train_idx)}; "
                           "raise the label fraction (data.semi_fractions)")
    if len(val_idx) == 0:
        raise DatasetError("fine-tuning needs a non-empty validation split to choose the lr; set data.val_size > 0")
    for name, idx in (("labelled subset", train_idx), ("validation split", val_idx)):
        if int(idx.min()) < 0 or int(idx.max()) >= n:
            raise DatasetError(f"{name} indexes outside the {n} training images")
    overlap = set(train_idx.tolist()) & set(val_idx.tolist())
    if overlap:
        raise DatasetError(f"the labelled subset and the validation split share {len(overlap)} images; the lr would "
                           "be chosen on training images. Take the subset from splits['train'] (prepare does)")


def finetune(backbone: torch.nn.Module, norm: Normalizer, images_u8: torch.Tensor, labels: torch.Tensor,
             train_idx: torch.Tensor, val_idx: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
             num_classes: int, recipe: str, cfg: Mapping | None, epochs: int | None, seed: int, device) -> dict:
    """Fine-tune `backbone` + a new linear head on images_u8[train_idx]; choose the grid point on val_idx.

    images_u8/labels: the training split (uint8 NCHW, int64); train_idx: the labelled subset; val_idx: the
    validation images used only to pick (lr, head_mult); test_x/test_y: the full test split, scored once.
    epochs: None takes cfg['epochs'] when it is a number, else the recipe default (default_epochs).
    Returns top1/top5 on the test split plus the chosen and tried grid points.
    """
    rec = resolve_recipe(recipe, cfg)
    device = torch.device(device)
    train_idx = torch.as_tensor(train_idx, dtype=torch.long).cpu()
    val_idx = torch.as_tensor(val_idx, dtype=torch.long).cpu()
    _check_indices(train_idx, val_idx, len(images_u8))
    if epochs is None:
        e = (cfg or {}).get("epochs")
        labelled_percent = 100.0 * len(train_idx) / len(images_u8)
        epochs = int(e) if isinstance(e, (int, float)) else default_epochs(recipe, labelled_percent)
    if int(epochs) < 1:
        raise ConfigError(f"fine-tuning epochs must be >= 1, got {epochs}")
    epochs = int(epochs)

    val_x, val_y = images_u8[val_idx], labels[val_idx].to(device)
    tried: list[dict] = []
    best = None  # (val_top1, record, backbone, head): a strictly better val top-1 replaces it, so ties keep grid order
    for lr, mult in rec.grid():
        trained = train_one(backbone, norm, images_u8, labels, train_idx, num_classes, rec, epochs, lr, mult, seed,
                            device)
        record = {"lr": lr, "head_mult": mult, "diverged": trained is None}
        if trained is not None:
            val = topk_accuracy(predict(*trained, val_x, norm, device, rec.eval_batch_size), val_y)
            record.update(val_top1=val["top1"], val_top5=val["top5"])
            if best is None or val["top1"] > best[0]:
                best = (val["top1"], record, *trained)
        tried.append(record)
    if best is None:
        raise NonFiniteLossError(
            f"fine-tuning ({recipe}) diverged at every grid point (lr_grid {list(rec.lr_grid)}, head_mult "
            f"{list(rec.head_mult)}). Fix: lower eval.semisup.lr_grid")
    _, chosen, bb, head = best
    test = topk_accuracy(predict(bb, head, test_x, norm, device, rec.eval_batch_size), test_y.to(device))
    bs = min(rec.batch_size, len(train_idx))
    return {
        **test,
        "val_top1": chosen["val_top1"], "val_top5": chosen["val_top5"],
        "lr": chosen["lr"], "lr_effective": chosen["lr"] * bs / 256, "head_mult": chosen["head_mult"],
        "recipe": recipe, "epochs": epochs, "batch_size": bs, "labelled_images": int(len(train_idx)),
        "selected_on": "val", "grid": tried,
        "val_top1_by_choice": {f"lr={r['lr']},head_mult={r['head_mult']}": r.get("val_top1") for r in tried},
    }


__all__ = ["RECIPES", "Recipe", "default_epochs", "finetune", "lr_factor", "predict", "resolve_recipe", "train_one"]
