"""Fine-tune the C4 detector on proxy scenes and score it with pycocotools (AP, AP50, AP75).

The schedule is Detectron2's: SGD with momentum, linear warm-up from lr * warmup_factor, x gamma at each
step, no weight decay on norm parameters (SOLVER.WEIGHT_DECAY_NORM = 0), horizontal flips, and
PRECISE_BN (BN statistics re-estimated on training batches before testing) as MoCo's config turns on.
MoCo reports the mean of 5 trials; `run_trials` runs one trial per seed from the same backbone and
the same scenes, so only the new heads' initialisation, data order and sampling vary.

On CPU a trial is deterministic under its seed: the global torch RNG (RPN/RoI sampling, size jitter) is
seeded, and data order and flips come from a separate generator.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import NonFiniteLossError
from ..io import save_json
from .c4 import MODEL_DEFAULTS, c4_from_checkpoint, model_settings
from .errors import DetectionError
from .scenes import SCENE_DEFAULTS, SceneSet, proxy_scene_sets, scene_settings

log = logging.getLogger(__name__)

SOLVER_DEFAULTS: dict = {
    "iters": 300,              # MoCo VOC: 24000. ~0.3 CPU-s per iteration for the width-8 R18 proxy
    "ims_per_batch": 8,        # MoCo VOC: 16
    "lr": 0.02,                # MoCo VOC: 0.02
    "momentum": 0.9,
    "weight_decay": 1.0e-4,
    "weight_decay_norm": 0.0,  # Detectron2 SOLVER.WEIGHT_DECAY_NORM
    "warmup_iters": 50,        # MoCo VOC: 100
    "warmup_factor": 0.001,
    "steps": [225, 275],       # MoCo VOC: 18000, 22000 (3/4 and 11/12 of the run)
    "gamma": 0.1,
    "flip_p": 0.5,
    "precise_bn_iters": 20,    # Detectron2 PRECISE_BN.NUM_ITER: 200; 0 turns it off
    "eval_batch": 32,
}
# The whole `detection` section a stage passes to run_trials (the detectron2 sub-section is read by
# detectron2_backend only).
DEFAULTS: dict = {
    "backend": "torchvision",   # torchvision | detectron2
    "train_scenes": 1000,
    "test_scenes": 300,
    "scene_seed": 0,            # fixed across trials and methods: every detector sees the same scenes
    "scenes": SCENE_DEFAULTS,
    "model": MODEL_DEFAULTS,
    "solver": SOLVER_DEFAULTS,
    "detectron2": {},
}
BACKENDS = ("torchvision", "detectron2")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def settings(cfg: Mapping | None = None) -> dict:
    """DEFAULTS overlaid with `cfg` section by section; unknown keys raise DetectionError."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise DetectionError(f"unknown detection setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    solver = dict(cfg.get("solver") or {})
    bad = sorted(set(solver) - set(SOLVER_DEFAULTS))
    if bad:
        raise DetectionError(f"unknown detection.solver setting(s) {bad}; known: {sorted(SOLVER_DEFAULTS)}")
    out = {**DEFAULTS, **cfg, "scenes": scene_settings(cfg.get("scenes")), "model": model_settings(cfg.get("model")),
           "solver": {**SOLVER_DEFAULTS, **solver}, "detectron2": dict(cfg.get("detectron2") or {})}
    if out["backend"] not in BACKENDS:
        raise DetectionError(f"detection.backend must be one of {BACKENDS}, got {out['backend']!r}")
    steps = [int(x) for x in out["solver"]["steps"]]
    if steps != sorted(steps):
        raise DetectionError(f"detection.solver.steps {steps} must be increasing")
    return out


def lr_at(it: int, solver: Mapping) -> float:
    """Detectron2's WarmupMultiStepLR: linear warm-up from warmup_factor, then x gamma after each step."""
    factor = 1.0
    if it < int(solver["warmup_iters"]):
        alpha = it / int(solver["warmup_iters"])
        factor = float(solver["warmup_factor"]) * (1 - alpha) + alpha
    drops = sum(it >= int(s) for s in solver["steps"])
    return float(solver["lr"]) * factor * float(solver["gamma"]) ** drops


def build_optimizer(model: nn.Module, solver: Mapping) -> torch.optim.SGD:
    """SGD with Detectron2's parameter groups: norm weights/biases get weight_decay_norm."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    norm_params, other = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (norm_params if isinstance(module, norm_types) else other).append(p)
    groups = [{"params": other, "weight_decay": float(solver["weight_decay"])},
              {"params": norm_params, "weight_decay": float(solver["weight_decay_norm"])}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=float(solver["lr"]),
                           momentum=float(solver["momentum"]))


def to_inputs(scenes: SceneSet, idx: Sequence[int], in_channels: int, device="cpu",
              flips: Sequence[bool] | None = None) -> tuple[list[torch.Tensor], list[dict]]:
    """Float [0, 1] images and torchvision targets (labels 1-based: 0 is background) for scenes `idx`."""
    images, targets = [], []
    width = scenes.images.shape[-1]
    for j, i in enumerate(idx):
        x = scenes.images[i].to(device).float().div_(255.0)
        boxes = scenes.boxes[i].to(device)
        if flips is not None and flips[j]:
            x = x.flip(-1)
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
        if x.shape[0] != in_channels:
            if x.shape[0] != 1:
                raise DetectionError(f"scenes have {x.shape[0]} channels but the backbone takes {in_channels}")
            x = x.expand(in_channels, -1, -1)  # grayscale scenes into an RGB backbone: replicate the channel
        images.append(x)
        targets.append({"boxes": boxes, "labels": scenes.labels[i].to(device) + 1})
    return images, targets


def batches(n: int, batch: int, gen: torch.Generator, flip_p: float) -> Iterator[tuple[list[int], list[bool]]]:
    """Detectron2's TrainingSampler: endless reshuffled epochs cut into batches; plus per-image flips."""
    buf: list[int] = []
    while True:
        while len(buf) < batch:
            buf += torch.randperm(n, generator=gen).tolist()
        idx, buf = buf[:batch], buf[batch:]
        flips = (torch.rand(batch, generator=gen) < flip_p).tolist()
        yield idx, flips


def total_loss(model: nn.Module, images, targets) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of the RPN and box-head losses (train mode) and each part as a float."""
    parts = model(images, targets)
    return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}


def train_detector(model: nn.Module, scenes: SceneSet, solver: Mapping, seed: int, device="cpu",
                   log_every: int = 50) -> list[dict]:
    """Train in place for solver.iters iterations; returns the per-iteration loss history."""
    if len(scenes) == 0:
        raise DetectionError("no training scenes: raise detection.train_scenes")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = build_optimizer(model, solver)
    stream = batches(len(scenes), int(solver["ims_per_batch"]), gen, float(solver["flip_p"]))
    iters, history, start = int(solver["iters"]), [], time.time()
    for it in range(iters):
        lr = lr_at(it, solver)
        for g in opt.param_groups:
            g["lr"] = lr
        idx, flips = next(stream)
        loss, parts = total_loss(model, *to_inputs(scenes, idx, model.in_channels, device, flips))
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(f"detection loss became {value} at iteration {it} (lr {lr:.4g}, {parts}); "
                                     f"lower detection.solver.lr or lengthen detection.solver.warmup_iters")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"iter": it, "lr": lr, "loss": value, **parts})
        if log_every and (it % log_every == 0 or it == iters - 1):
            log.info("detection iter %d/%d loss %.4f lr %.4g (%.0fs)", it + 1, iters, value, lr, time.time() - start)
    return history


@torch.no_grad()
def precise_bn(model: nn.Module, scenes: SceneSet, iters: int, batch: int, seed: int, device="cpu") -> None:
    """Re-estimate every trainable BatchNorm's running statistics as the plain average over `iters` training
    batches (Detectron2's PreciseBN), replacing the momentum average gathered while the weights moved."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if iters <= 0 or not bns:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # None = cumulative average over the forward passes below
    stream = batches(len(scenes), batch, torch.Generator().manual_seed(seed + 7919), 0.0)
    model.train()
    try:
        for _ in range(iters):
            idx, _flips = next(stream)
            model(*to_inputs(scenes, idx, model.in_channels, device))
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m


@torch.no_grad()
def predict(model: nn.Module, scenes: SceneSet, batch: int = 32, device="cpu") -> list[dict]:
    """COCO-format detections (image ids 1-based, category id = class + 1, bbox xywh) for every scene."""
    model.to(device).eval()
    dets = []
    for s in range(0, len(scenes), batch):
        idx = list(range(s, min(s + batch, len(scenes))))
        images, _ = to_inputs(scenes, idx, model.in_channels, device)
        for i, out in zip(idx, model(images)):
            for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
                dets.append({"image_id": i + 1, "category_id": int(label), "score": float(score),
                             "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    return dets


def coco_metrics(gt: dict, dets: list[dict]) -> dict[str, float]:
    """COCOeval bbox AP, AP50, AP75, APs/m/l in percent; -1 stays -1 (COCO: no ground truth in that range)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its table
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:
            # loadRes fails on an empty list; an empty result set is still scored (AP 0).
            coco_dt = COCO()
            coco_dt.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: (float(v) * 100 if v >= 0 else -1.0) for name, v in zip(METRICS, ev.stats[:6])}


def run_trial(backbone_path, cfg: Mapping, seed: int, train: SceneSet, test: SceneSet, device="cpu") -> dict:
    """One fine-tune + evaluation from `backbone_path`: metrics, timings and the loss history."""
    s = settings(cfg)
    torch.manual_seed(seed)  # the new heads' initialisation is part of the trial
    model, meta = c4_from_checkpoint(backbone_path, len(train.classes), s["model"])
    t0 = time.time()
    history = train_detector(model, train, s["solver"], seed, device)
    precise_bn(model, train, int(s["solver"]["precise_bn_iters"]), int(s["solver"]["ims_per_batch"]), seed, device)
    t1 = time.time()
    metrics = coco_metrics(test.coco(), predict(model, test, int(s["solver"]["eval_batch"]), device))
    return {"seed": int(seed), **metrics, "final_loss": history[-1]["loss"] if history else math.nan,
            "train_seconds": t1 - t0, "eval_seconds": time.time() - t1, "method": meta.get("method"),
            "history": history}


def summarize(trials: Sequence[Mapping], keys: Sequence[str] = METRICS) -> dict:
    """Mean and std (sample std, ddof 1; 0 for a single trial) of each metric across trials."""
    mean, std = {}, {}
    for k in keys:
        vals = np.array([t[k] for t in trials], dtype=float)
        mean[k] = float(vals.mean())
        std[k] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std}


def run_trials(backbone_path, cfg: Mapping, seeds: Sequence[int], data: Mapping | None = None, device="cpu",
               out_dir: str | Path | None = None) -> dict:
    """MoCo's protocol on the proxy: one detector per seed from the same backbone and scenes; per-seed and
    mean/std AP, AP50, AP75 (+ APs/m/l). `data` is the prepared payload (data.prepare.load_prepared).
    With `out_dir`, metrics.json (this dict) and history.json (per-seed losses) are written atomically."""
    s = settings(cfg)
    if s["backend"] != "torchvision":
        raise DetectionError(f"train.run_trials runs the torchvision backend; for detection.backend="
                             f"{s['backend']!r} call sempos.detection.detectron2_backend.run_trials")
    if data is None:
        raise DetectionError("run_trials needs the prepared dataset payload (data=load_prepared(path))")
    if not seeds:
        raise DetectionError("run_trials needs at least one seed (MoCo reports the mean of 5)")
    train, test = proxy_scene_sets(data, int(s["train_scenes"]), int(s["test_scenes"]), int(s["scene_seed"]),
                                   s["scenes"])
    trials = [run_trial(backbone_path, s, int(seed), train, test, device) for seed in seeds]
    result = {"per_seed": {str(t["seed"]): {k: v for k, v in t.items() if k != "history"} for t in trials},
              **summarize(trials), "n_trials": len(trials), "backend": "torchvision",
              "backbone_path": str(backbone_path),
              # Placement without overlap leaves crowded canvases with fewer items: report what was made.
              "objects_per_scene": {name: sum(len(b) for b in sc.boxes) / max(1, len(sc))
                                    for name, sc in (("train", train), ("test", test))},
              "settings": {k: s[k] for k in ("train_scenes", "test_scenes", "scene_seed", "scenes", "model", "solver")}}
    if out_dir is not None:
        save_json({str(t["seed"]): t["history"] for t in trials}, Path(out_dir) / "history.json")
        save_json(result, Path(out_dir) / "metrics.json")
    return result
