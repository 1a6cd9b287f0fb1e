"""Linear probe on frozen, precomputed features (SGD + cosine schedule; last epoch reported).

The proxy study probes precomputed features of un-augmented images: on 2 CPU cores re-running the
backbone on RRC+flip views every epoch would dominate the whole DAG. Features are standardised with the
train split's statistics (the role BN-free lr-30 plays in MoCo's probe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .knn import topk_accuracy


def standardize(train: torch.Tensor, *others: torch.Tensor):
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp(min=1e-6)
    return [(t - mean) / std for t in (train, *others)]


def linear_probe(train_f, train_y, test_f, test_y, num_classes: int, epochs: int = 30, batch_size: int = 256,
                 lr: float = 0.1, weight_decay: float = 0.0, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    train_f, test_f = standardize(train_f.float(), test_f.float())
    fc = torch.nn.Linear(train_f.shape[1], num_classes)
    torch.nn.init.normal_(fc.weight, std=0.01, generator=gen)
    torch.nn.init.zeros_(fc.bias)
    opt = torch.optim.SGD(fc.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(train_f) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    for _ in range(epochs):
        order = torch.randperm(len(train_f), generator=gen)
        for s in range(steps_per_epoch):
            idx = order[s * batch_size:(s + 1) * batch_size]
            loss = F.cross_entropy(fc(train_f[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        acc = topk_accuracy(fc(test_f), test_y)
        train_acc = topk_accuracy(fc(train_f), train_y)["top1"]
    if not torch.isfinite(loss):
        raise FloatingPointError("linear probe diverged (non-finite loss); lower eval.linear.lr")
    return {**acc, "train_top1": train_acc, "epochs": epochs, "final_loss": float(loss.detach())}


# --- MoCo's linear protocol: a frozen backbone under RRC + flip views (docs/science.md §1.4, §4.2) -------------

AUGMENTED_DEFAULTS = {"epochs": 100, "batch_size": 256, "lr": 30.0, "momentum": 0.9, "weight_decay": 0.0,
                      "schedule": "step", "lr_steps": [60, 80], "lr_gamma": 0.1, "crop_scale": [0.08, 1.0],
                      "flip_p": 0.5, "eval_batch_size": 256}


def _lr_mult(cfg: dict, epoch: int, step: int, steps: int) -> float:
    if cfg["schedule"] == "cosine":
        import math

        return 0.5 * (1 + math.cos(math.pi * (epoch * steps + step) / max(1, cfg["epochs"] * steps)))
    return cfg["lr_gamma"] ** sum(epoch >= int(m) for m in cfg["lr_steps"])


def linear_augmented(backbone: torch.nn.Module, norm, images, labels: torch.Tensor, train_idx, test_images,
                     test_labels: torch.Tensor, num_classes: int, cfg: dict | None = None, seed: int = 0,
                     device="cpu") -> dict:
    """Train a linear classifier on the frozen backbone's pooled features of RRC + flip views.

    MoCo's protocol by default: SGD momentum 0.9, lr 30 (not scaled with the batch), batch 256, wd 0, 100
    epochs, lr x0.1 at epochs 60 and 80; the backbone stays in eval mode (BN running statistics), the fc starts
    from N(0, 0.01). Test: the test-time transform (encoded images: resize + central crop). Last epoch
    reported. Every key of AUGMENTED_DEFAULTS can be overridden by `cfg`.
    """
    from ..augment import AugmentSpec, eval_batch
    from .features import eval_views
    from .finetune import crop_views
    from .knn import topk_accuracy

    from ..data.shards import is_encoded

    cfg = {**AUGMENTED_DEFAULTS, **{k: v for k, v in (cfg or {}).items() if k in AUGMENTED_DEFAULTS}}
    device = torch.device(device)
    backbone = backbone.to(device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    fc = torch.nn.Linear(backbone.feat_dim, num_classes)
    torch.nn.init.normal_(fc.weight, std=0.01, generator=gen)
    torch.nn.init.zeros_(fc.bias)
    fc = fc.to(device)
    opt = torch.optim.SGD(fc.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    train_idx = torch.as_tensor(train_idx).long()
    imgs = images[train_idx] if is_encoded(images) else images[train_idx].to(device)
    ys = labels[train_idx].to(device)
    size = imgs.crop_size if is_encoded(imgs) else int(imgs.shape[-1])
    aug = AugmentSpec(crop_scale=tuple(cfg["crop_scale"]), flip_p=cfg["flip_p"], jitter_p=0.0, grayscale_p=0.0,
                      blur_p=0.0, solarize_p=0.0)
    bs = min(int(cfg["batch_size"]), len(train_idx))
    steps = max(1, len(train_idx) // bs)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    loss = torch.tensor(float("nan"))
    for epoch in range(int(cfg["epochs"])):
        order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed * 997 + epoch)).to(device)
        views = crop_views(imgs, order, bs, steps, aug, size, seed, epoch, device, norm)
        hits = seen = 0
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = cfg["lr"] * _lr_mult(cfg, epoch, step, steps)
            x = next(views)
            with torch.no_grad(), amp:
                f = backbone(x).float()
            logits = fc(f)
            y = ys[order[step * bs:(step + 1) * bs]]
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hits += int((logits.argmax(1) == y).sum())
            seen += len(y)
        if not torch.isfinite(loss):
            raise FloatingPointError("linear probe diverged (non-finite loss); lower eval.linear.lr")
    scores = []
    with torch.no_grad():
        for x_u8 in eval_views(test_images, int(cfg["eval_batch_size"]), device):
            with amp:
                scores.append(fc(backbone(eval_batch(x_u8, norm, size)).float()))
    acc = topk_accuracy(torch.cat(scores), test_labels.to(device))
    return {**acc, "train_top1": 100.0 * hits / max(1, seen), "epochs": int(cfg["epochs"]),
            "final_loss": float(loss.detach()), "protocol": "augmented"}
