"""Pretraining throughput (pairs/s): the real sempos step vs a synthetic ceiling vs lightly's loop.

  real       Trainer._step: uint8 images on the device -> batched augmentation -> step -> EMA
  synthetic  the same model and optimiser on fixed, already-normalised tensors (no data, no augmentation)
  lightly    lightly's reference recipe: PIL images, its torchvision transforms in DataLoader workers,
             lightly's loss/heads, the same backbone. SimCLR and MoCo-v2 are lightly's own loops; for
             SNCLR, which lightly does not have, its NNCLR loop (the closest: a nearest-neighbour support
             set) stands in and the row says so. Needs `pip install lightly`; rows say "not installed".

Modes: `eager`, and `compile` (torch.compile of the step's model, as runtime.compile does; with
--compile-backend other than inductor the model is wrapped here with that backend, which the CPU smoke
test uses because inductor needs minutes on 2 cores).

python bench/throughput.py --configs r18_32 r50_224 --algos simclr mocov2 snclr --modes eager compile
Writes a CSV (--out, rewritten after every row, so a run stopped at a time limit keeps what it measured)
and prints a markdown table. With --time-limit it starts no item that would not finish in time and lists
it as skipped. Numbers belong in docs/results.md with the device.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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
    "tiny": dict(arch="resnet18_cifar", width=4, channels=3, size=16),  # the CPU smoke test's size
    "r18w8_28": dict(arch="resnet18_cifar", width=8, channels=1, size=28),
    "r18_32": dict(arch="resnet18_cifar", width=64, channels=3, size=32),
    "r50_224": dict(arch="resnet50", width=64, channels=3, size=224),
}
AUG = {"crop_scale": [0.2, 1.0], "flip_p": 0.5, "jitter_p": 0.8, "jitter": [0.4, 0.4, 0.4, 0.1],
       "grayscale_p": 0.2, "blur_p": 0.5, "solarize_p": 0.0}
HP = {"simclr": {}, "mocov2": {"queue_size": 4096}, "snclr": {"bank_size": 4096, "k": 5}}
LIGHTLY_ALGO = {"simclr": "simclr", "mocov2": "mocov2", "snclr": "nnclr"}  # lightly has no SNCLR
FIELDS = ["config", "algo", "mode", "device", "batch", "steps", "real_pairs_s", "synthetic_pairs_s",
          "real_vs_synthetic", "lightly_algo", "lightly_workers", "lightly_pairs_s", "real_vs_lightly",
          "first_step_s", "seconds", "status"]
# First guesses (s) of an item's cost before one of its kind has run, for the time limit.
GUESS_S = {"eager": 15.0, "compile": 60.0, "lightly": 20.0}


def synthetic_data(n: int, c: int, size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    idx = torch.arange(n)
    return {"train_x": x, "train_y": y, "test_x": x[:8], "test_y": y[:8], "classes": list("0123456789"),
            "splits": {"train": idx, "val": idx[:0], "pretrain": idx, "semi": {}}}


def settings(algo: str, cfg: dict, batch: int) -> dict:
    return {"name": algo, "algo": algo, "hp": {"algo": algo, **HP.get(algo, {})},
            "pretrain": {"epochs": 1000, "batch_size": batch, "optimizer": "sgd", "lr": 0.06, "momentum": 0.9,
                         "weight_decay": 5e-4, "warmup_epochs": 0, "knn_monitor": 0},
            "augment": AUG, "backbone": {"arch": cfg["arch"], "width": cfg["width"]}}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_real(trainer: Trainer, steps: int, warmup: int) -> tuple[float, float]:
    """(pairs/s, seconds of the first step: compilation in compile mode)."""
    pairs = trainer.pairs.for_epoch(0, 0).to(trainer.rt.device)  # as Trainer.fit does, once per epoch
    t0 = time.perf_counter()
    first = None
    for s in range(warmup):
        trainer._step(0, s % trainer.steps_per_epoch, pairs)
        if first is None:
            _sync(trainer.rt.device)
            first = time.perf_counter() - t0
    _sync(trainer.rt.device)
    t0 = time.perf_counter()
    for s in range(steps):
        trainer._step(0, (warmup + s) % trainer.steps_per_epoch, pairs)
    _sync(trainer.rt.device)
    return steps * trainer.batch / (time.perf_counter() - t0), first or 0.0


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


def lightly_available() -> bool:
    try:
        import lightly  # noqa: F401
    except ImportError:
        return False
    return True


def bench_lightly(algo: str, cfg: dict, data: dict, batch: int, steps: int, warmup: int, device, workers: int) -> float:
    """lightly's documented SimCLR / MoCo-v2 / NNCLR training loop on the same images and backbone."""
    import copy

    from lightly.loss import NTXentLoss
    from lightly.models.modules import (MoCoProjectionHead, NNCLRPredictionHead, NNCLRProjectionHead,
                                        NNMemoryBankModule, SimCLRProjectionHead)
    from lightly.models.utils import deactivate_requires_grad, update_momentum
    from lightly.transforms import MoCoV2Transform, SimCLRTransform
    from PIL import Image

    from sempos.models.resnet import build_backbone

    mode = "L" if cfg["channels"] == 1 else "RGB"
    arr = data["train_x"].permute(0, 2, 3, 1).squeeze(-1).numpy() if cfg["channels"] == 1 else \
        data["train_x"].permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(a, mode) for a in arr]
    size = cfg["size"]
    transform = (MoCoV2Transform if algo == "mocov2" else SimCLRTransform)(input_size=size, gaussian_blur=0.5)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(images[i].convert("RGB"))

    loader = torch.utils.data.DataLoader(DS(), batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         pin_memory=device.type == "cuda")
    backbone = build_backbone(cfg["arch"], cfg["width"], 3).to(device)
    feat = backbone.feat_dim
    params = list(backbone.parameters())
    if algo == "simclr":
        head = SimCLRProjectionHead(feat, 512, 128).to(device)
        crit = NTXentLoss(temperature=0.2)
    elif algo == "mocov2":
        head = MoCoProjectionHead(feat, 512, 128).to(device)
        bk, hk = copy.deepcopy(backbone), copy.deepcopy(head)
        deactivate_requires_grad(bk)
        deactivate_requires_grad(hk)
        crit = NTXentLoss(temperature=0.2, memory_bank_size=(4096, 128))
    else:  # nnclr
        head = NNCLRProjectionHead(feat, 512, 128).to(device)
        pred = NNCLRPredictionHead(128, 512, 128).to(device)
        bank = NNMemoryBankModule(size=(4096, 128)).to(device)
        crit = NTXentLoss(temperature=0.1)
        params += list(pred.parameters())
    params += list(head.parameters())
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
                elif algo == "mocov2":
                    # Symmetrised like sempos' MoCo-v2 default, so both loops do the same work per pair.
                    update_momentum(backbone, bk, 0.99)
                    update_momentum(head, hk, 0.99)
                    with torch.no_grad():
                        k0, k1 = hk(bk(x0)), hk(bk(x1))
                    loss = 0.5 * (crit(head(backbone(x0)), k1) + crit(head(backbone(x1)), k0))
                else:
                    z0, z1 = head(backbone(x0)), head(backbone(x1))
                    p0, p1 = pred(z0), pred(z1)
                    n0 = bank(z0.detach(), update=False)
                    n1 = bank(z1.detach(), update=True)
                    loss = 0.5 * (crit(n0, p1) + crit(n1, p0))
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                _sync(device)
                return steps * batch / (time.perf_counter() - t0)


def device_name(rt) -> str:
    return torch.cuda.get_device_name() if rt.device.type == "cuda" else f"cpu x{torch.get_num_threads()}"


def _ratio(a: float, b: float, digits: int) -> float:
    return round(a / b, digits) if a == a and b == b and b > 0 else float("nan")


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"error: {type(exc).__name__}: {msg[0][:200] if msg else ''}"


def build_trainer(algo: str, cfg: dict, data: dict, batch: int, rt, mode: str, backend: str) -> Trainer:
    registry.get(algo)
    job = PretrainJob(settings(algo, cfg, batch), 0, Path("/tmp/sempos-bench"), data)
    if mode == "compile" and backend == "inductor":
        return Trainer(job, dataclasses.replace(rt, compile=True))  # the trainer's own compile path
    trainer = Trainer(job, rt)
    if mode == "compile":
        trainer.wrapped = torch.compile(trainer.wrapped, backend=backend)
    return trainer


def write_csv(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in FIELDS) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=None, choices=sorted(CONFIGS),
                    help="default: r18_32 r50_224 on a GPU; r18w8_28 r18_32 on a CPU (ResNet-50/224 px would take hours)")
    ap.add_argument("--algos", nargs="+", default=["simclr", "mocov2"], choices=sorted(HP))
    ap.add_argument("--modes", nargs="+", default=None, choices=["eager", "compile"])
    ap.add_argument("--compile", action="store_true", help="same as --modes compile")
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--lightly-workers", type=int, default=None, help="DataLoader workers (default: min(8, cores))")
    ap.add_argument("--no-lightly", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds: start no item that would end after this (skipped items are listed)")
    ap.add_argument("--guess-s", nargs="+", default=[], metavar="KIND=S",
                    help=f"first guesses of an item's seconds for --time-limit (default {GUESS_S})")
    ap.add_argument("--out", type=Path, default=Path("results/bench/throughput.csv"))
    args = ap.parse_args(argv)
    guess = dict(GUESS_S)
    for item in args.guess_s:
        kind, _, secs = item.partition("=")
        if kind not in guess:
            ap.error(f"--guess-s {item}: kind must be one of {sorted(guess)}")
        guess[kind] = float(secs)
    start = time.perf_counter()
    modes = args.modes or (["compile"] if args.compile else ["eager"])
    rt = resolve({"device": args.device, "threads": args.threads or os.cpu_count() or 1, "precision": "auto",
                  "channels_last": "auto", "compile": False, "progress": False})
    if args.configs is None:
        args.configs = ["r18_32", "r50_224"] if rt.device.type == "cuda" else ["r18w8_28", "r18_32"]
    if args.lightly_workers is None:
        args.lightly_workers = min(8, os.cpu_count() or 1)
    have_lightly = lightly_available()
    took: dict[tuple, float] = {}  # (config, kind) -> seconds of the last such item

    def fits(key: tuple) -> bool:
        if args.time_limit is None:
            return True
        need = took.get(key, guess[key[1]])
        return time.perf_counter() - start + need <= args.time_limit

    rows: list[dict] = []
    lightly_done: dict[tuple, float] = {}
    for mode in modes:
        for cname in args.configs:
            cfg = CONFIGS[cname]
            data = None
            for algo in args.algos:
                row = {"config": cname, "algo": algo, "mode": mode, "device": device_name(rt), "batch": args.batch,
                       "steps": args.steps, "lightly_algo": LIGHTLY_ALGO[algo], "lightly_workers": args.lightly_workers}
                t_item = time.perf_counter()
                if not fits((cname, mode)):
                    row["status"] = "skipped: time limit"
                    rows.append(row)
                    write_csv(rows, args.out)
                    continue
                status = []
                real = synth = first = float("nan")
                try:
                    data = data or synthetic_data(max(args.images, args.batch * 2), cfg["channels"], cfg["size"])
                    trainer = build_trainer(algo, cfg, data, args.batch, rt, mode, args.compile_backend)
                    trainer.model.train()
                    real, first = bench_real(trainer, args.steps, args.warmup)
                    synth = bench_synthetic(trainer, args.steps, args.warmup)
                    status.append("ok")
                except Exception as exc:  # one failing item must not lose the others' rows
                    status.append(_one_line(exc))
                finally:
                    trainer = None
                    if mode == "compile":
                        torch._dynamo.reset()
                    if rt.device.type == "cuda":
                        torch.cuda.empty_cache()
                took[(cname, mode)] = time.perf_counter() - t_item
                lkey = (cname, algo)
                if args.no_lightly:
                    light, lnote = float("nan"), "lightly off"
                elif not have_lightly:
                    light, lnote = float("nan"), "lightly skipped: not installed"
                elif lkey in lightly_done:
                    light, lnote = lightly_done[lkey], ""
                elif not fits((cname, "lightly")):
                    light, lnote = float("nan"), "lightly skipped: time limit"
                else:
                    t_l = time.perf_counter()
                    try:
                        light, lnote = bench_lightly(LIGHTLY_ALGO[algo], cfg, data, args.batch, args.steps, args.warmup,
                                                     rt.device, args.lightly_workers), ""
                    except Exception as exc:
                        light, lnote = float("nan"), "lightly " + _one_line(exc)
                    lightly_done[lkey] = light
                    took[(cname, "lightly")] = time.perf_counter() - t_l
                if lnote:
                    status.append(lnote)
                row.update({"real_pairs_s": round(real, 1), "synthetic_pairs_s": round(synth, 1),
                            "real_vs_synthetic": _ratio(real, synth, 3), "lightly_pairs_s": round(light, 1),
                            "real_vs_lightly": _ratio(real, light, 2), "first_step_s": round(first, 2),
                            "seconds": round(time.perf_counter() - t_item, 1), "status": "; ".join(status)})
                rows.append(row)
                write_csv(rows, args.out)
                print({k: row.get(k) for k in FIELDS}, flush=True)
    print(markdown(rows))
    print(f"wrote {args.out}")
    if not rows or all(not str(r["status"]).startswith("ok") for r in rows):
        raise SystemExit("bench/throughput.py: no item was measured")


if __name__ == "__main__":
    main()
