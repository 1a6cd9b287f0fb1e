"""Fine-tune the C4 detector on proxy scenes or PASCAL VOC and score it by the VOC devkit and pycocotools.

The schedule is Detectron2's: SGD with momentum, linear warm-up from lr * warmup_factor, x gamma at each
step, no weight decay on norm parameters (SOLVER.WEIGHT_DECAY_NORM = 0), horizontal flips, and
PRECISE_BN (BN statistics re-estimated on training batches before testing) as MoCo's config turns on.
MoCo reports the mean of 5 trials; `run_trials` runs one trial per seed from the same backbone and
the same images, so only the new heads' initialisation, data order and sampling vary.

Data sources share one interface (`load(i, flip, in_channels)`): the in-memory proxy scenes (scenes.SceneSet)
and VOC's JPEGs (voc.VOCBoxes), the latter decoded by `solver.workers` DataLoader workers. Metrics: see
sempos.detection.evaluate (AP/AP50/AP75 by the VOC devkit's rules, coco_* by pycocotools, same detections).

On CPU a trial is deterministic under its seed: the global torch RNG (RPN/RoI sampling, size jitter) is
seeded, and data order and flips come from a separate generator.

Under torchrun (runtime.gpus_per_job > 1) training is DDP: every rank takes its share of each batch of
ims_per_batch images (runtime.sync_bn: SyncBatchNorm, MoCo's setting), PreciseBN averages the ranks'
statistics, and each rank predicts a share of the test images, gathered for one evaluation on rank 0.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .. import dist
from ..errors import NonFiniteLossError
from ..io import save_json
from .c4 import MODEL_DEFAULTS, c4_from_checkpoint, model_settings
from .errors import DetectionError
from .evaluate import evaluate
from .evaluate import coco_metrics  # noqa: F401  (re-exported: COCO-format callers)
from .scenes import SCENE_DEFAULTS, proxy_scene_sets, scene_settings
from .voc import VOC_DEFAULTS, VOCBoxes, check_files, voc_settings

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
    "chunk": 0,                # images per forward pass, gradients accumulated over the batch (0: the whole
                               # batch at once, so BN sees all of it, as MoCo's SyncBN over 8 GPUs x 2 images)
    "workers": 0,              # DataLoader workers decoding images (VOC: 4; proxy scenes are in memory)
}
# The whole `detection` section a stage passes to run_trials (the detectron2 sub-section is read by
# detectron2_backend only).
DEFAULTS: dict = {
    "backend": "torchvision",   # torchvision | detectron2
    "dataset": "proxy",         # proxy scenes of the pretraining dataset | voc0712 (docs/science.md §4.5)
    "voc": VOC_DEFAULTS,
    "train_scenes": 1000,
    "test_scenes": 300,
    "scene_seed": 0,            # fixed across trials and methods: every detector sees the same scenes
    "scenes": SCENE_DEFAULTS,
    "model": MODEL_DEFAULTS,
    "solver": SOLVER_DEFAULTS,
    "detectron2": {},
}
BACKENDS = ("torchvision", "detectron2")
METRICS = ("AP", "AP50", "AP75", "coco_AP", "coco_AP50", "coco_AP75", "coco_APs", "coco_APm", "coco_APl")
DATASETS = ("proxy", "voc0712")


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
           "solver": {**SOLVER_DEFAULTS, **solver}, "detectron2": dict(cfg.get("detectron2") or {}),
           "voc": voc_settings(cfg.get("voc"))}
    if out["backend"] not in BACKENDS:
        raise DetectionError(f"detection.backend must be one of {BACKENDS}, got {out['backend']!r}")
    if out["dataset"] not in DATASETS:
        raise DetectionError(f"detection.dataset must be one of {DATASETS}, got {out['dataset']!r}")
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


def to_inputs(source, idx: Sequence[int], in_channels: int, device="cpu",
              flips: Sequence[bool] | None = None) -> tuple[list[torch.Tensor], list[dict]]:
    """Float [0, 1] images and torchvision targets (labels 1-based: 0 is background) for images `idx`."""
    return _to_device([source.load(i, bool(flips[j]) if flips is not None else False, in_channels)
                       for j, i in enumerate(idx)], device)


def _to_device(items, device) -> tuple[list[torch.Tensor], list[dict]]:
    images = [x.to(device) for x, _, _ in items]
    targets = [{"boxes": b.to(device), "labels": lab.to(device) + 1} for _, b, lab in items]
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


class _PlannedBatches(torch.utils.data.Dataset):
    """Batch k of a precomputed plan [(indices, flips)], decoded by a DataLoader worker."""

    def __init__(self, source, plan, in_channels: int) -> None:
        self.source, self.plan, self.in_channels = source, plan, in_channels

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k):
        idx, flips = self.plan[k]
        return [self.source.load(i, bool(f), self.in_channels) for i, f in zip(idx, flips)]


def _as_is(batch):
    return batch


def load_batches(source, plan, in_channels: int, workers: int = 0) -> Iterator[list]:
    """The plan's batches of (image, boxes, labels), in order; decoded in `workers` processes when > 0."""
    if workers <= 0:
        for idx, flips in plan:
            yield [source.load(i, bool(f), in_channels) for i, f in zip(idx, flips)]
        return
    yield from torch.utils.data.DataLoader(_PlannedBatches(source, plan, in_channels), batch_size=None,
                                           shuffle=False, num_workers=workers, collate_fn=_as_is)


def total_loss(model: nn.Module, images, targets) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of the RPN and box-head losses (train mode) and each part as a float."""
    parts = model(images, targets)
    return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}


def _shard(plan):
    """This rank's images of every planned batch (all of them in a single process)."""
    r, w = dist.rank(), dist.world_size()
    return plan if w == 1 else [(idx[r::w], flips[r::w]) for idx, flips in plan]


def _wrap(model: nn.Module, device, sync_bn: bool) -> tuple[nn.Module, nn.Module]:
    """(model, the module to call): DDP around it under torchrun, SyncBatchNorm first when asked."""
    if dist.world_size() == 1:
        return model, model
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    if sync_bn and device.type == "cuda":  # SyncBatchNorm is GPU-only; CPU ranks (gloo tests) keep per-rank BN
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _global_mean(value: float, device) -> float:
    """The loss averaged over ranks, so that a non-finite loss on any rank stops every rank."""
    if dist.world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return float(t) / dist.world_size()


def train_detector(model: nn.Module, scenes, solver: Mapping, seed: int, device="cpu",
                   log_every: int = 50, sync_bn: bool = False) -> list[dict]:
    """Train in place for solver.iters iterations on `scenes` (any source with `load`); returns the loss history."""
    if len(scenes) == 0:
        raise DetectionError("no training images: raise detection.train_scenes (or check detection.voc.train_sets)")
    batch, world = int(solver["ims_per_batch"]), dist.world_size()
    if batch % world:
        raise DetectionError(f"detection.solver.ims_per_batch={batch} does not split over {world} GPUs; make it a "
                             f"multiple of runtime.gpus_per_job")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    model, net = _wrap(model, device, sync_bn)
    opt = build_optimizer(model, solver)
    stream = batches(len(scenes), batch, gen, float(solver["flip_p"]))
    iters, history, start = int(solver["iters"]), [], time.time()
    plan = _shard([next(stream) for _ in range(iters)])
    chunk = int(solver.get("chunk", 0)) or batch
    loader = load_batches(scenes, plan, model.in_channels, int(solver.get("workers", 0)))
    for it, items in enumerate(loader):
        lr = lr_at(it, solver)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        value, parts = 0.0, {}
        # Gradients of the batch mean, accumulated over chunks of `chunk` images (one pass when chunk >= batch);
        # DDP averages the ranks' gradients once, after the last chunk.
        starts = list(range(0, len(items), chunk))
        for c in starts:
            part = items[c:c + chunk]
            sync = contextlib.nullcontext() if (c == starts[-1] or net is model) else net.no_sync()
            with sync:
                loss, p = total_loss(net, *_to_device(part, device))
                (loss * (len(part) / len(items))).backward()
            value += float(loss.detach()) * len(part) / len(items)
            for k, v in p.items():
                parts[k] = parts.get(k, 0.0) + v * len(part) / len(items)
        value = _global_mean(value, device)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"detection loss became {value} at iteration {it} (lr {lr:.4g}, {parts}); "
                                     f"lower detection.solver.lr or lengthen detection.solver.warmup_iters")
        opt.step()
        history.append({"iter": it, "lr": lr, "loss": value, **parts})
        if log_every and (it % log_every == 0 or it == iters - 1):
            log.info("detection iter %d/%d loss %.4f lr %.4g (%.0fs)", it + 1, iters, value, lr, time.time() - start)
    return history


@torch.no_grad()
def precise_bn(model: nn.Module, scenes, iters: int, batch: int, seed: int, device="cpu", workers: int = 0) -> None:
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
    plan = _shard([next(stream) for _ in range(iters)])
    model.train()
    try:
        for items in load_batches(scenes, plan, model.in_channels, workers):
            model(*_to_device(items, device))
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
    if dist.world_size() > 1:  # every rank saw its own share: average the statistics (SyncBN's are equal already)
        for bn in bns:
            for buf in (bn.running_mean, bn.running_var):
                torch.distributed.all_reduce(buf)
                buf.div_(dist.world_size())


@torch.no_grad()
def predict(model: nn.Module, scenes, batch: int = 32, device="cpu", workers: int = 0) -> list[dict]:
    """Detections {image_id (position), label (0-based), score, box XYXY in the image's own pixels} of every image."""
    model.to(device).eval()
    mine = list(range(dist.rank(), len(scenes), dist.world_size()))  # this rank's share of the test images
    plan = [(mine[s:s + batch], [False] * batch) for s in range(0, len(mine), batch)]
    dets = []
    for (idx, _), items in zip(plan, load_batches(scenes, plan, model.in_channels, workers)):
        images, _ = _to_device(items, device)
        for i, out in zip(idx, model(images)):
            for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
                dets.append({"image_id": i, "label": int(label) - 1, "score": float(score), "box": box})
    if dist.world_size() > 1:
        parts = [None] * dist.world_size()
        torch.distributed.all_gather_object(parts, dets)
        dets = sorted((d for part in parts for d in part), key=lambda d: (d["image_id"], -d["score"]))
    return dets


def run_trial(backbone_path, cfg: Mapping, seed: int, train, test, device="cpu", sync_bn: bool = False) -> dict:
    """One fine-tune + evaluation from `backbone_path`: metrics, timings and the loss history."""
    s = settings(cfg)
    solver = s["solver"]
    workers = int(solver["workers"])
    torch.manual_seed(seed)  # the new heads' initialisation is part of the trial
    model, meta = c4_from_checkpoint(backbone_path, len(train.classes), s["model"])
    t0 = time.time()
    history = train_detector(model, train, solver, seed, device, sync_bn=sync_bn)
    precise_bn(model, train, int(solver["precise_bn_iters"]), int(solver["ims_per_batch"]), seed, device, workers)
    t1 = time.time()
    dets = predict(model, test, int(solver["eval_batch"]), device, workers)
    metrics = evaluate(test.ground_truth(), dets, test.classes, bool(s["voc"]["use_07_metric"]))
    return {"seed": int(seed), **metrics, "final_loss": history[-1]["loss"] if history else math.nan,
            "train_seconds": t1 - t0, "eval_seconds": time.time() - t1, "method": meta.get("method"),
            "detections": len(dets), "history": history}


def detection_sets(s: Mapping, data: Mapping):
    """(train, test) sources: VOC's splits from a prepared detection index, or proxy scenes of a classification
    payload (train items from its train split, test items from its test images)."""
    if data.get("kind") == "detection":
        if s["dataset"] == "proxy":
            raise DetectionError("the prepared data is a detection dataset but detection.dataset is 'proxy'")
        v = s["voc"]
        train = VOCBoxes.from_index(data, v["train_sets"], int(v["max_images"]))
        test = VOCBoxes.from_index(data, v["test_sets"], int(v["max_images"]))
        check_files(train)
        check_files(test)
        return train, test
    if s["dataset"] != "proxy":
        raise DetectionError(f"detection.dataset is {s['dataset']!r} but the payload is a classification dataset: "
                             f"pass data/prepared/{s['dataset']}.pt")
    return proxy_scene_sets(data, int(s["train_scenes"]), int(s["test_scenes"]), int(s["scene_seed"]), s["scenes"])


def _n_objects(source, i: int) -> int:
    return len(source.records[i]["labels"]) if hasattr(source, "records") else len(source.labels[i])


def summarize(trials: Sequence[Mapping], keys: Sequence[str] = METRICS) -> dict:
    """Mean and std (sample std, ddof 1; 0 for a single trial) of each metric across trials."""
    mean, std = {}, {}
    for k in keys:
        vals = np.array([t[k] for t in trials], dtype=float)
        mean[k] = float(vals.mean())
        std[k] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std}


def run_trials(backbone_path, cfg: Mapping, seeds: Sequence[int], data: Mapping | None = None, device="cpu",
               out_dir: str | Path | None = None, sync_bn: bool = False) -> dict:
    """MoCo's protocol: one detector per seed from the same backbone and images; per-seed and mean/std of every
    metric (sempos.detection.evaluate). `data` is the prepared payload (data.prepare.load_prepared): the
    pretraining dataset for proxy scenes, or the voc0712 detection index.
    With `out_dir`, metrics.json (this dict) and history.json (per-seed losses) are written atomically."""
    s = settings(cfg)
    if s["backend"] != "torchvision":
        raise DetectionError(f"train.run_trials runs the torchvision backend; for detection.backend="
                             f"{s['backend']!r} call sempos.detection.detectron2_backend.run_trials")
    if data is None:
        raise DetectionError("run_trials needs the prepared dataset payload (data=load_prepared(path))")
    if not seeds:
        raise DetectionError("run_trials needs at least one seed (MoCo reports the mean of 5)")
    train, test = detection_sets(s, data)
    trials = [run_trial(backbone_path, s, int(seed), train, test, device, sync_bn) for seed in seeds]
    result = {"per_seed": {str(t["seed"]): {k: v for k, v in t.items() if k != "history"} for t in trials},
              **summarize(trials), "n_trials": len(trials), "backend": "torchvision", "dataset": s["dataset"],
              "backbone_path": str(backbone_path), "images": {"train": len(train), "test": len(test)},
              # Placement without overlap leaves crowded canvases with fewer items: report what was made.
              "objects_per_image": {name: sum(_n_objects(sc, i) for i in range(len(sc))) / max(1, len(sc))
                                    for name, sc in (("train", train), ("test", test))},
              "settings": {k: s[k] for k in ("dataset", "train_scenes", "test_scenes", "scene_seed", "scenes", "voc",
                                             "model", "solver")}}
    if out_dir is not None and dist.is_main():
        save_json({str(t["seed"]): t["history"] for t in trials}, Path(out_dir) / "history.json")
        save_json(result, Path(out_dir) / "metrics.json")
    return result
