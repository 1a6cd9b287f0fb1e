"""Linear probe on frozen, precomputed features (SGD + cosine schedule; last epoch reported).

The proxy study probes precomputed features of un-augmented images: on 2 CPU cores re-running the
backbone on RRC+flip views every epoch would dominate the whole DAG. Features are standardised with the
train split's statistics (the role BN-free lr-30 plays in MoCo's probe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..progress import bar
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
    for _ in bar(range(epochs), desc="linear probe", unit="epoch"):
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
