"""Optional full fine-tuning on a transfer target (docs/science.md §4.4: "Fine-tune ... CIFAR-10/100, Flowers-102,
Pets"), reusing the semi-supervised fine-tuning code: the SimCLR (or mmselfsup) recipe, whole network plus a new
linear head, the grid point chosen on the target's validation split by the target's metric, then refit on
train + val with that choice and scored once on test (Kornblith et al. 2019's protocol).

Single-label targets only: the fine-tuning head is a softmax classifier, so VOC2007's multi-label
classification is evaluated by the linear protocol alone.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ..errors import DatasetError
# The semi-supervised fine-tuning code (eval/semisup.py once renamed): one fine-tune, predictions, recipe defaults.
from .semisup import predict, resolve_recipe, train_one
from .knn import topk_accuracy
from .transfer_metrics import transfer_score


class ChannelAdapter(torch.nn.Module):
    """A backbone fed images of another channel count (RGB targets into a grayscale backbone, or the reverse)."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.feat_dim = backbone.feat_dim
        self.in_channels = getattr(backbone, "in_channels", 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .features import _match_channels

        return self.backbone(x if x.shape[1] == self.in_channels else _match_channels(x, self.in_channels))


def _scorer(metric: str):
    def score(logits: torch.Tensor, labels: torch.Tensor) -> float:
        return transfer_score(metric, labels.cpu().numpy(), logits.float().cpu().numpy())

    return score


def finetune_target(backbone: torch.nn.Module, norm, data: Mapping, metric: str, cfg: Mapping, seed: int,
                    device) -> dict:
    """Fine-tune on a prepared transfer target (data/prepared/<target>.pt); returns test `score` and top-1/5.

    cfg: eval.transfer.finetune_recipe ({recipe, epochs, and any semisup recipe key: lr_grid, batch_size, ...}).
    """
    if metric == "voc07_map" or data["train_y"].ndim != 1:
        raise DatasetError("fine-tuning trains a softmax head: multi-label targets (voc2007) use the linear protocol "
                           "only; remove them from eval.transfer.targets or set eval.transfer.finetune: false")
    cfg = dict(cfg)
    name = cfg.pop("recipe", "simclr")
    epochs = int(cfg.pop("epochs"))
    rec = resolve_recipe(name, cfg)
    device = torch.device(device)
    model = ChannelAdapter(backbone)
    x, y = data["train_x"], data["train_y"]
    train = torch.as_tensor(data["splits"]["train"]).long()
    val = torch.as_tensor(data["splits"]["val"]).long()
    num_classes = len(data["classes"])
    score = _scorer(metric)
    tried, best = [], None
    for lr, mult in rec.grid():
        trained = train_one(model, norm, x, y, train, num_classes, rec, epochs, lr, mult, seed, device)
        record = {"lr": lr, "head_mult": mult, "diverged": trained is None}
        if trained is not None:
            record["val_score"] = score(predict(*trained, x[val], norm, device, rec.eval_batch_size), y[val])
            if best is None or record["val_score"] > best["val_score"]:  # ties keep grid order
                best = record
        tried.append(record)
    if best is None:
        raise DatasetError(f"fine-tuning diverged at every grid point (lr_grid {list(rec.lr_grid)}); lower "
                           "eval.transfer.finetune_recipe.lr_grid")
    # Refit on train + val with the chosen grid point; the test split is read once, by the refit model.
    refit = train_one(model, norm, x, y, torch.cat([train, val]), num_classes, rec, epochs, best["lr"],
                      best["head_mult"], seed, device)
    if refit is None:
        raise DatasetError(f"fine-tuning diverged when refit on train + val at lr {best['lr']}; lower "
                           "eval.transfer.finetune_recipe.lr_grid")
    logits = predict(*refit, data["test_x"], norm, device, rec.eval_batch_size)
    test_y = data["test_y"].to(logits.device)
    return {**topk_accuracy(logits, test_y), "score": score(logits, test_y), "metric": metric,
            "selected": best, "grid": tried, "recipe": name, "epochs": epochs, "refit": "train+val",
            "batch_size": min(rec.batch_size, len(train)), "n_train": int(len(train)), "n_val": int(len(val)),
            "n_test": int(len(test_y))}
