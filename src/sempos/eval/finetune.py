"""Semi-supervised evaluation: fine-tune the whole network on a small labelled subset (1% / 10%).

Two recipes (SCIENCE.md 4.3):
  simclr     Nesterov SGD (m 0.9), crop + flip only, no weight decay, lr chosen from `lr_grid`
  mmselfsup  SGD (m 0.9, wd 5e-4), backbone lr from `lr_grid` x head lr multiplier from `head_mult`,
             lr x0.1 at 60% and 80% of the epochs (epochs 12 and 16 of 20)
Hyper-parameters are chosen on the validation split; the test split is read once, by the chosen model,
after its last epoch.
"""

from __future__ import annotations

import copy
import itertools
from typing import Mapping

import torch
import torch.nn.functional as F

from ..augment import AugmentSpec, Normalizer, augment_batch, eval_batch
from ..errors import ConfigError
from .knn import topk_accuracy

RECIPES = ("simclr", "mmselfsup")
CROP_FLIP = AugmentSpec(crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


def _grid(recipe: str, cfg: Mapping) -> list[tuple[float, float]]:
    if recipe == "simclr":
        return [(float(lr), 1.0) for lr in cfg["lr_grid"]]
    return [(float(lr), float(m)) for lr, m in itertools.product(cfg["lr_grid"], cfg.get("head_mult", [1.0]))]


def _optimizer(recipe, backbone, head, lr, head_mult):
    groups = [{"params": backbone.parameters(), "lr": lr}, {"params": head.parameters(), "lr": lr * head_mult}]
    if recipe == "simclr":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4)


def _lr_factor(recipe: str, epoch: int, epochs: int) -> float:
    if recipe == "simclr":
        return 1.0
    return 0.1 ** sum(epoch >= round(f * epochs) for f in (0.6, 0.8))


@torch.no_grad()
def _scores(backbone, head, images_u8, norm, device, batch=512):
    backbone.eval()
    out = []
    for s in range(0, len(images_u8), batch):
        x = eval_batch(images_u8[s:s + batch].to(device), norm)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(head(backbone(x)).float())
    return torch.cat(out)


def _train_one(backbone0, norm, images_u8, labels, train_idx, num_classes, recipe, cfg, epochs, lr, head_mult,
               seed, device):
    torch.manual_seed(seed)
    backbone = copy.deepcopy(backbone0).to(device)
    head = torch.nn.Linear(backbone.feat_dim, num_classes).to(device)
    opt = _optimizer(recipe, backbone, head, lr, head_mult)
    base = [g["lr"] for g in opt.param_groups]
    bs = min(int(cfg["batch_size"]), len(train_idx))
    size = images_u8.shape[-1]
    imgs, ys = images_u8.to(device), labels.to(device)
    for epoch in range(epochs):
        for g, b in zip(opt.param_groups, base):
            g["lr"] = b * _lr_factor(recipe, epoch, epochs)
        backbone.train()
        order = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed * 997 + epoch))]
        for s in range(0, len(order) - bs + 1, bs):
            idx = order[s:s + bs].to(device)
            gen = torch.Generator(device=device).manual_seed(seed * 100_003 + epoch * 1_009 + s)
            x = augment_batch(imgs[idx], CROP_FLIP, size, gen, norm)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(head(backbone(x)).float(), ys[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"fine-tuning diverged at lr {lr}; lower eval.semisup.lr_grid")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return backbone, head


def finetune(backbone: torch.nn.Module, norm: Normalizer, images_u8: torch.Tensor, labels: torch.Tensor,
             train_idx: torch.Tensor, val_idx: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
             num_classes: int, recipe: str, cfg: Mapping, epochs: int, seed: int, device) -> dict:
    if recipe not in RECIPES:
        raise ConfigError(f"unknown fine-tuning recipe '{recipe}'; choose one of {RECIPES}")
    device = torch.device(device)
    choices = []
    for lr, mult in _grid(recipe, cfg):
        bb, head = _train_one(backbone, norm, images_u8, labels, train_idx, num_classes, recipe, cfg, epochs,
                              lr, mult, seed, device)
        val = topk_accuracy(_scores(bb, head, images_u8[val_idx], norm, device), labels[val_idx].to(device))["top1"]
        choices.append((val, -lr, lr, mult, bb, head))
    val, _, lr, mult, bb, head = max(choices, key=lambda c: (c[0], c[1]))
    test = topk_accuracy(_scores(bb, head, test_x, norm, device), test_y.to(device))
    return {**test, "val_top1": val, "lr": lr, "head_mult": mult, "recipe": recipe, "epochs": epochs,
            "labelled_images": int(len(train_idx)),
            "val_top1_by_choice": {f"lr={c[2]},head_mult={c[3]}": c[0] for c in choices}}
