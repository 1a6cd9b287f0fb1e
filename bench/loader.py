"""JPEG loader throughput: decoded-and-augmented 224-px pairs/s, sempos' loader vs ImageFolder + PIL transforms.

One JPEG set (default 2,000 images around 500 x 375, quality 90, cut from scikit-learn's two sample photos with
varied crops, sizes and colour) is packed into shards once; then, side by side in one run:

  sempos crops   sempos.data.loader on the CPU: worker processes decode, random-resized-crop (against each
                 image's own size) and flip two views of every image to 224-px uint8 - what a GPU receives
  sempos full    the same plus the photometric part (MoCo-v2 jitter, grayscale, blur) batched on the CPU in
                 the main process - the whole augmentation when there is no GPU
  folder crops   torchvision ImageFolder + PIL RandomResizedCrop/flip/ToTensor in a DataLoader (two views)
  folder full    the same with PIL ColorJitter, RandomGrayscale and PIL Gaussian blur (lightly's and
                 solo-learn's torchvision default, MoCo's TwoCropsTransform)

for 1, 2 and all workers. pairs/s is wall-clock; pairs/cpu-s divides by the CPU seconds of the main process and
its workers together (getrusage), the per-core rate. On a machine shared with other jobs pairs/s is contended;
pairs/cpu-s much less so.

  python bench/loader.py                                   # CPU table -> results/bench/loader.csv
  python bench/loader.py --device cuda --steps 30          # + the loader feeding ResNet-50/224 (bf16,
                                                           #   channels_last) vs synthetic data on the GPU
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sempos.augment import AugmentSpec, Normalizer, augment_crops  # noqa: E402
from sempos.data import loader  # noqa: E402
from sempos.data.jpeg import CropSpec  # noqa: E402
from sempos.data.pack import PackSettings, pack_split  # noqa: E402
from sempos.data.shards import ShardImages  # noqa: E402
from sempos.data.sources import SourceItem  # noqa: E402

MOCO_V2 = AugmentSpec(crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.8, jitter=(0.4, 0.4, 0.4, 0.1),
                      grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0), solarize_p=0.0)
CLASSES = 10


def make_jpeg_set(root: Path, n: int, seed: int = 0) -> Path:
    """root/train/<class>/<k>.jpg: n JPEGs (q90) around 500 x 375, from sklearn's sample photos (idempotent)."""
    from PIL import Image, ImageEnhance
    from sklearn.datasets import load_sample_images

    done = root / f".complete-{n}"
    if done.exists():
        return root / "train"
    photos = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    for k in range(n):
        src = photos[k % len(photos)]
        W, H = src.size
        cw, ch = int(W * rng.uniform(0.5, 1.0)), int(H * rng.uniform(0.5, 1.0))
        x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
        w = int(500 * rng.uniform(0.85, 1.15))
        h = int(375 * rng.uniform(0.85, 1.15))
        img = src.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        d = root / "train" / f"c{k % CLASSES}"
        d.mkdir(parents=True, exist_ok=True)
        img.save(d / f"{k:05d}.jpg", "JPEG", quality=90)
    done.touch()
    return root / "train"


def shard_images(tree: Path, out: Path, crop: int = 224) -> ShardImages:
    """The set packed into shards (reused when already packed), as the loader's ShardImages."""
    items = [SourceItem(f"{c.name}/{p.name}", i, str(p))
             for i, c in enumerate(sorted(tree.iterdir())) for p in sorted(c.iterdir())]
    table, _ = pack_split(items, "train", out, PackSettings(shard_images=1024), workers=os.cpu_count() or 1)
    return ShardImages(table, None, crop, round(crop / 0.875))


def _cpu_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def bench_sempos(images: ShardImages, workers: int, pairs: int, batch: int, full: bool, device="cpu") -> dict:
    loader.configure(workers=workers, decode="cpu" if torch.device(device).type == "cpu" else "device")
    norm = Normalizer((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), device)
    g = torch.Generator().manual_seed(0)
    steps = max(1, pairs // batch)
    plan = []
    for s in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=g)
        plan.append((s, torch.stack([idx, idx], 1)))
    c0, t0 = _cpu_seconds(), time.perf_counter()
    stream = loader.crop_stream(images, iter(plan), CropSpec.of(MOCO_V2), images.crop_size, device)
    for s, views in enumerate(stream):
        if full:
            gen = torch.Generator(device=device).manual_seed(s)
            x1, x2 = augment_crops(views[:, 0], MOCO_V2, gen, norm), augment_crops(views[:, 1], MOCO_V2, gen, norm)
            assert x1.shape == x2.shape == (batch, 3, images.crop_size, images.crop_size)
    del stream
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {"pairs_s": steps * batch / wall, "pairs_cpu_s": steps * batch / max(cpu, 1e-9)}


class TwoViews:
    def __init__(self, transform):
        self.transform = transform

    def __call__(self, img):
        return self.transform(img), self.transform(img)


class PILBlur:
    """MoCo's / lightly's Gaussian blur on PIL images: sigma uniform in [0.1, 2] as the filter radius."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, img):
        import random

        from PIL import ImageFilter

        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def folder_transform(full: bool, size: int = 224):
    import torchvision.transforms as T

    ops = [T.RandomResizedCrop(size, scale=(0.2, 1.0))]
    if full:
        ops += [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                T.RandomApply([PILBlur()], p=0.5)]
    ops += [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    return TwoViews(T.Compose(ops))


def bench_folder(tree: Path, workers: int, pairs: int, batch: int, full: bool) -> dict:
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(tree), transform=folder_transform(full))
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     generator=torch.Generator().manual_seed(0))
    steps = max(1, pairs // batch)
    c0, t0 = _cpu_seconds(), time.perf_counter()
    it = iter(dl)
    for _ in range(steps):
        (v1, v2), _ = next(it)
        assert v1.shape == (batch, 3, 224, 224)
    del it  # joins the workers, so their CPU time is counted
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {"pairs_s": steps * batch / wall, "pairs_cpu_s": steps * batch / max(cpu, 1e-9)}


def cpu_table(args) -> list[dict]:
    tree = make_jpeg_set(Path(args.data), args.images)
    images = shard_images(tree, Path(args.data) / "shards")
    cores = len(os.sched_getaffinity(0))
    rows = []
    for w in sorted({1, 2, cores} if args.workers is None else set(args.workers)):
        for name, fn in (("sempos crops", lambda: bench_sempos(images, w, args.pairs, args.batch, False)),
                         ("sempos full", lambda: bench_sempos(images, w, args.pairs, args.batch, True)),
                         ("folder crops", lambda: bench_folder(tree, w, args.pairs, args.batch, False)),
                         ("folder full", lambda: bench_folder(tree, w, args.pairs, args.batch, True))):
            r = fn()
            row = {"loader": name, "workers": w, "pairs_s": round(r["pairs_s"], 1),
                   "pairs_cpu_s": round(r["pairs_cpu_s"], 1), "machine": f"cpu x{cores}"}
            rows.append(row)
            print(row, flush=True)
    for w in sorted({r["workers"] for r in rows}):
        by = {r["loader"]: r for r in rows if r["workers"] == w}
        for kind in ("crops", "full"):
            s, f = by[f"sempos {kind}"], by[f"folder {kind}"]
            print(f"workers {w} {kind}: sempos / folder = {s['pairs_s'] / f['pairs_s']:.2f}x pairs/s, "
                  f"{s['pairs_cpu_s'] / f['pairs_cpu_s']:.2f}x pairs/cpu-s")
    return rows


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def feed_rows(args, device: str) -> list[dict]:
    """The loader feeding the real pretraining step (default ResNet-50/224, bf16, channels_last on CUDA) vs the
    same step on synthetic data already on the device, for both decode paths."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import bench_synthetic, settings

    from sempos.runtime import resolve
    from sempos.train.trainer import PretrainJob, Trainer

    tree = make_jpeg_set(Path(args.data), args.images)
    images = shard_images(tree, Path(args.data) / "shards", args.crop)
    n = len(images)
    cuda = torch.device(device).type == "cuda"
    idx = torch.arange(n)
    data = {"train_x": images, "train_y": torch.zeros(n, dtype=torch.long), "test_x": images[:8],
            "test_y": torch.zeros(8, dtype=torch.long), "classes": ["0"],
            "splits": {"train": idx, "val": idx[:0], "pretrain": idx, "semi": {}}}
    rows = []
    for decode in ("device", "cpu"):
        rt = resolve({"device": device, "threads": 4, "precision": "bf16" if cuda else "fp32", "channels_last": cuda,
                      "compile": args.compile, "progress": False, "loader_workers": "auto", "decode": decode})
        cfg = {"arch": args.arch, "width": args.width, "channels": 3, "size": args.crop}
        trainer = Trainer(PretrainJob(settings(args.algo, cfg, args.batch), 0, Path("/tmp/sempos-bench-loader"),
                                      data), rt)
        trainer.cfg["epochs"] = 10**6
        trainer.model.train()
        done, t0, epoch = 0, None, 0
        while done < args.warmup + args.steps:
            pairs = trainer.pairs.for_epoch(0, epoch)
            trainer._views = trainer.view_stream(epoch, pairs)
            for s in range(trainer.steps_per_epoch):
                if done == args.warmup:
                    _sync(device)
                    t0 = time.perf_counter()
                trainer._step(epoch, s, pairs)
                done += 1
                if done == args.warmup + args.steps:
                    break
            trainer._views = None
            epoch += 1
        _sync(device)
        real = args.steps * trainer.batch / (time.perf_counter() - t0)
        synth = bench_synthetic(trainer, args.steps, args.warmup)
        crops = bench_sempos(images, "auto", args.batch * 4, args.batch, decode == "device", device)
        row = {"loader": f"sempos decode={decode} -> {args.algo} {args.arch}/{args.crop}",
               "device": torch.cuda.get_device_name() if cuda else "cpu",
               "batch": args.batch, "real_pairs_s": round(real, 1), "synthetic_pairs_s": round(synth, 1),
               "real_vs_synthetic": round(real / synth, 3), "loader_only_pairs_s": round(crops["pairs_s"], 1),
               "cpu_workers": loader.SETTINGS.resolved_workers()}
        rows.append(row)
        print(row, flush=True)
        del trainer
        if cuda:
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--data", default="/tmp/sempos-bench-jpeg", help="where the generated JPEG set is kept")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=1024, help="pairs per CPU measurement")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1, 2 and all cores")
    ap.add_argument("--algo", default="mocov2", help="GPU mode: the pretraining step fed by the loader")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--skip-cpu", action="store_true", help="GPU mode: only the GPU rows")
    ap.add_argument("--feed", action="store_true", help="also the loader-feeding-the-model rows on --device "
                    "(implied by --device cuda; on cpu only a smoke run of that code)")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--out", default="results/bench/loader.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the main process: one core, like a training job's loader side
    rows = [] if args.skip_cpu else cpu_table(args)
    if args.device == "cuda" or args.feed:
        if args.device == "cuda":
            args.batch = max(args.batch, 256)
        rows += feed_rows(args, args.device)
    import pandas as pd

    df = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(df.to_markdown(index=False))


if __name__ == "__main__":
    main()
