"""Pretraining throughput (pairs/s): the real sempos step vs a synthetic ceiling vs lightly's loop.

  real       Trainer._step: uint8 images on the device -> batched augmentation -> step -> EMA
  synthetic  the same model and optimiser on fixed, already-normalised tensors (no data, no augmentation)
  lightly    lightly's reference recipe: PIL images, its torchvision transforms in DataLoader workers,
             lightly's loss/heads, the same backbone (SimCLR and MoCo-v2 only; needs `pip install lightly`)

python bench/throughput.py --configs r18_32 r50_224 --algos simclr mocov2 --steps 30
Writes a CSV (--out) and prints a markdown table. Numbers belong in docs/results.md with the device.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sempos.algos import registry  # noqa: E402
from sempos.runtime import resolve  # noqa: E402
from sempos.train.trainer import PretrainJob, Trainer  # noqa: E402

CONFIGS = {
    "r18w8_28": dict(arch="resnet18_cifar", width=8, channels=1, size=28),
    "r18_32": dict(arch="resnet18_cifar", width=64, channels=3, size=32),
    "r50_224": dict(arch="resnet50", width=64, channels=3, size=224),
}
AUG = {"crop_scale": [0.2, 1.0], "flip_p": 0.5, "jitter_p": 0.8, "jitter": [0.4, 0.4, 0.4, 0.1],
       "grayscale_p": 0.2, "blur_p": 0.5, "solarize_p": 0.0}


def synthetic_data(n: int, c: int, size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    idx = torch.arange(n)
    return {"train_x": x, "train_y": y, "test_x": x[:8], "test_y": y[:8], "classes": list("0123456789"),
            "splits": {"train": idx, "val": idx[:0], "pretrain": idx, "semi": {}}}


def settings(algo: str, cfg: dict, batch: int) -> dict:
    return {"name": algo, "algo": algo, "hp": {"algo": algo},
            "pretrain": {"epochs": 1000, "batch_size": batch, "optimizer": "sgd", "lr": 0.06, "momentum": 0.9,
                         "weight_decay": 5e-4, "warmup_epochs": 0, "knn_monitor": 0},
            "augment": AUG, "backbone": {"arch": cfg["arch"], "width": cfg["width"]}}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_real(trainer: Trainer, steps: int, warmup: int) -> float:
    pairs = trainer.pairs.for_epoch(0, 0)
    for s in range(warmup):
        trainer._step(0, s % trainer.steps_per_epoch, pairs)
    _sync(trainer.rt.device)
    t0 = time.perf_counter()
    for s in range(steps):
        trainer._step(0, s % trainer.steps_per_epoch, pairs)
    _sync(trainer.rt.device)
    return steps * trainer.batch / (time.perf_counter() - t0)


def bench_synthetic(trainer: Trainer, steps: int, warmup: int) -> float:
    from sempos.algos.base import Batch, ema_update

    dev, b = trainer.rt.device, trainer.batch
    c, s = trainer.images.shape[1], trainer.size
    x1 = torch.randn(b, c, s, s, device=dev)
    x2 = torch.randn(b, c, s, s, device=dev)
    if trainer.rt.channels_last:
        x1, x2 = x1.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
    ids = torch.arange(b, device=dev)

    def step(i):
        with trainer.rt.autocast:
            loss = trainer.wrapped(x1, x2, Batch(ids, ids, 0, i, 0.5))["loss"]
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        if trainer.model.momentum_pairs():
            ema_update(trainer.model.momentum_pairs(), 0.99)

    for i in range(warmup):
        step(i)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(dev)
    return steps * b / (time.perf_counter() - t0)


def bench_lightly(algo: str, cfg: dict, data: dict, batch: int, steps: int, warmup: int, device, workers: int) -> float:
    """lightly's documented SimCLR / MoCo-v2 training loop on the same images and backbone."""
    try:
        import lightly  # noqa: F401
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead, SimCLRProjectionHead
        from lightly.models.utils import deactivate_requires_grad, update_momentum
        from lightly.transforms import MoCoV2Transform, SimCLRTransform
    except ImportError:
        return float("nan")
    import copy

    from PIL import Image

    from sempos.models.resnet import build_backbone

    mode = "L" if cfg["channels"] == 1 else "RGB"
    arr = data["train_x"].permute(0, 2, 3, 1).squeeze(-1).numpy() if cfg["channels"] == 1 else \
        data["train_x"].permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(a, mode) for a in arr]
    size = cfg["size"]
    if algo == "simclr":
        transform = SimCLRTransform(input_size=size, gaussian_blur=0.5)
    elif algo == "mocov2":
        transform = MoCoV2Transform(input_size=size, gaussian_blur=0.5)
    else:
        return float("nan")

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            img = images[i].convert("RGB")
            return transform(img)

    loader = torch.utils.data.DataLoader(DS(), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    backbone = build_backbone(cfg["arch"], cfg["width"], 3).to(device)
    feat = backbone.feat_dim
    if algo == "simclr":
        head = SimCLRProjectionHead(feat, 512, 128).to(device)
        crit = NTXentLoss(temperature=0.2)
        params = list(backbone.parameters()) + list(head.parameters())
    else:
        head = MoCoProjectionHead(feat, 512, 128).to(device)
        bk, hk = copy.deepcopy(backbone), copy.deepcopy(head)
        deactivate_requires_grad(bk)
        deactivate_requires_grad(hk)
        crit = NTXentLoss(temperature=0.2, memory_bank_size=(4096, 128))
        params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=5e-4)
    amp = device.type == "cuda"
    done, t0 = 0, None
    while True:
        for views in loader:
            if done == warmup:
                _sync(device)
                t0 = time.perf_counter()
            x0, x1 = views[0].to(device, non_blocking=True), views[1].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                if algo == "simclr":
                    loss = crit(head(backbone(x0)), head(backbone(x1)))
                else:
                    # Symmetrised like sempos' MoCo-v2 default, so both loops do the same work per pair.
                    update_momentum(backbone, bk, 0.99)
                    update_momentum(head, hk, 0.99)
                    with torch.no_grad():
                        k0, k1 = hk(bk(x0)), hk(bk(x1))
                    loss = 0.5 * (crit(head(backbone(x0)), k1) + crit(head(backbone(x1)), k0))
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                _sync(device)
                return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=None, choices=sorted(CONFIGS),
                    help="default: r18_32 r50_224 on a GPU; r18w8_28 r18_32 on a CPU (ResNet-50/224 px would take hours)")
    ap.add_argument("--algos", nargs="+", default=["simclr", "mocov2"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--lightly-workers", type=int, default=None, help="DataLoader workers (default: min(8, cores))")
    ap.add_argument("--no-lightly", action="store_true")
    ap.add_argument("--out", default="results/bench/throughput.csv")
    args = ap.parse_args()
    rt = resolve({"device": args.device, "threads": torch.get_num_threads(), "precision": "auto",
                  "channels_last": "auto", "compile": args.compile, "progress": False})
    if args.configs is None:
        args.configs = ["r18_32", "r50_224"] if rt.device.type == "cuda" else ["r18w8_28", "r18_32"]
    if args.lightly_workers is None:
        args.lightly_workers = min(8, os.cpu_count() or 1)
    rows = []
    for cname in args.configs:
        cfg = CONFIGS[cname]
        data = synthetic_data(max(args.images, args.batch * 2), cfg["channels"], cfg["size"])
        for algo in args.algos:
            registry.get(algo)
            trainer = Trainer(PretrainJob(settings(algo, cfg, args.batch), 0, Path("/tmp/sempos-bench"), data), rt)
            trainer.model.train()
            real = bench_real(trainer, args.steps, args.warmup)
            synth = bench_synthetic(trainer, args.steps, args.warmup)
            light = float("nan") if args.no_lightly else bench_lightly(
                algo, cfg, data, args.batch, args.steps, args.warmup, rt.device, args.lightly_workers)
            row = {"config": cname, "algo": algo, "device": torch.cuda.get_device_name() if rt.device.type == "cuda"
                   else f"cpu x{torch.get_num_threads()}", "batch": args.batch, "compile": args.compile,
                   "real_pairs_s": round(real, 1), "synthetic_pairs_s": round(synth, 1),
                   "real_vs_synthetic": round(real / synth, 3), "lightly_pairs_s": round(light, 1),
                   "real_vs_lightly": round(real / light, 2) if light == light else float("nan")}
            rows.append(row)
            print(row, flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(df.to_markdown(index=False))


if __name__ == "__main__":
    main()
