"""The shared pretraining loop: one implementation for every algorithm, CPU and CUDA.

Checkpoints after every epoch (model incl. queues/banks, optimiser, history), and every
`pretrain.checkpoint_steps` steps within one when set (ImageNet epochs are long); a rerun resumes from the
last one. Augmentation and data order are pure functions of (seed, epoch, step), so a resumed run ends
with the same weights as an uninterrupted one.

Data: an in-memory uint8 tensor (moved to the device whole, cropped and augmented there in batches) or
encoded images (sempos.data.shards.ShardImages: each step's views are cropped at decode time by
sempos.data.loader, against each image's own size, then augmented photometrically on the device).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from .. import dist
from ..algos import registry
from ..algos.base import Batch, ema_update, partner_switches
from ..augment import AugmentSpec, Normalizer, augment_batch, augment_crops
from ..data.shards import is_encoded
from ..config import digest
from ..errors import ConfigError, NonFiniteLossError
from ..progress import rounded
from ..eval.features import extract
from ..eval.knn import knn_accuracy
from ..io import load_torch, save_text, save_torch
from ..models.checkpoint import backbone_kwargs
from ..models.resnet import build_backbone
from ..runtime import Runtime
from .optim import build_optimizer, lr_at
from ..positives.pairs import PairSource

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
HISTORY_FIELDS = ("epoch", "steps", "loss", "knn_top1", "lr", "seconds", "pairs_per_s")


@dataclass
class PretrainJob:
    settings: dict          # config.method_settings(...)
    seed: int
    run_dir: Path
    data: dict              # prepared dataset payload
    pairs: PairSource | None = None
    partners: object | None = None   # positives.partners.PartnerIndex for SePP variant M / partner masking
    positives_cfg: dict = field(default_factory=dict)
    on_step: Callable[[int, int], None] | None = None  # test hook: called before each step
    extras: dict = field(default_factory=dict)


def step_generator(device: torch.device, seed: int, epoch: int, step: int, rank: int = 0) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch * 100_003 + step * 7 + rank * 7_777_777 + 12345) % (2**63))
    return g


def geometry_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """Seed of a step's crop boxes and flips for encoded data (drawn on the CPU, before decoding)."""
    return (seed * 1_000_003 + epoch * 100_003 + step * 7 + rank * 7_777_777 + 54321) % (2**63)


def build_model(settings: dict, in_channels: int, num_train: int, seed: int, image_size: int = 32,
                partners=None, positives_cfg: dict | None = None):
    """The algorithm around a freshly seeded backbone, with the partner switches its positives ask for."""
    torch.manual_seed(seed)
    backbone = build_backbone(**backbone_kwargs(settings["backbone"], in_channels, image_size))
    return registry.get(settings["algo"])(backbone, settings["hp"], num_train, partners=partners,
                                          **partner_switches(positives_cfg))


def history_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    extras = sorted({k for r in rows for k in r} - set(HISTORY_FIELDS))
    writer = csv.DictWriter(buf, fieldnames=list(HISTORY_FIELDS) + extras)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class Trainer:
    def __init__(self, job: PretrainJob, rt: Runtime) -> None:
        self.job, self.rt = job, rt
        s = job.settings
        self.cfg = s["pretrain"]
        data = job.data
        self.encoded = is_encoded(data["train_x"])
        # Encoded images stay on disk and are streamed per step; tensors move to the device whole.
        self.images = data["train_x"] if self.encoded else data["train_x"].to(rt.device)
        self.labels = data["train_y"].to(rt.device)
        pre_idx = data["splits"]["pretrain"]
        self.pairs = job.pairs or PairSource(pre_idx)
        if self.encoded:
            self.norm = Normalizer(self.images.mean, self.images.std, rt.device)
        else:
            self.norm = Normalizer.fit(data["train_x"][pre_idx], rt.device)
        self.aug = AugmentSpec.from_cfg(s["augment"])
        self.size = self.images.crop_size if self.encoded else int(self.images.shape[-1])
        partners = job.partners.to(rt.device) if job.partners is not None else None
        self.model = build_model(s, int(self.images.shape[1]), len(pre_idx), job.seed, self.size, partners,
                                 job.positives_cfg).to(rt.device)
        if rt.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.diag_labels = self.labels
        self.optimizer = build_optimizer(self.model.parameters(), self.cfg) if self.model.trains else None
        self.batch = min(self.cfg["batch_size"], len(self.pairs))
        self.world, self.rank = dist.world_size(), dist.rank()
        if self.batch % self.world:
            raise ConfigError(f"pretrain.batch_size {self.batch} is not divisible by the {self.world} processes")
        self.local_batch = self.batch // self.world
        self.wrapped = self._wrap_ddp() if self.world > 1 and self.model.trains else self.model
        if rt.compile and self.model.trains:
            # Compiles the step's forward; self.model keeps its parameter names for checkpoints.
            self.wrapped = torch.compile(self.wrapped)
        self.steps_per_epoch = len(self.pairs) // self.batch  # drop_last: every batch is full
        self.total_steps = self.steps_per_epoch * self.cfg["epochs"]
        self.base_lr = self.cfg["lr"] * self.cfg["batch_size"] / 256
        # Settings alone do not identify a run: a re-mined pair file or a rebuilt dataset under the same settings
        # must not resume (and so silently reproduce) the previous run's finished checkpoint.
        self.fingerprint = digest({k: s[k] for k in ("algo", "hp", "pretrain", "augment", "backbone")}
                                  | {"seed": job.seed, "pairs": self.pairs.content_digest(),
                                     "data": data.get("content_sha256")})
        self.history: list[dict] = []
        self.start_epoch = 0
        self.start_step = 0  # > 0 when resuming inside an epoch
        self._resumed_logs: list[dict] = []
        self._views = None   # encoded data: the current epoch's stream of uint8 view pairs
        self._monitor = self._monitor_sets(data)

    def _wrap_ddp(self):
        from torch.nn.parallel import DistributedDataParallel

        if self.rt.sync_bn and self.rt.device.type != "cuda":
            raise ConfigError("runtime.sync_bn: SyncBatchNorm runs on CUDA devices only; set runtime.sync_bn: false "
                              "for a multi-process CPU (gloo) run")
        if self.rt.sync_bn:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
        # Queues and banks stay identical across ranks because every push is gathered first, so
        # buffers are not re-broadcast each step (that would copy the whole queue per iteration).
        return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=self.model.ddp_find_unused)

    # --- checkpointing -------------------------------------------------------------------------
    def _state(self, epoch: int, step: int = 0, logs: list | None = None) -> dict:
        """The resume point after `epoch` (the last complete one), plus `step` steps of the next one."""
        state = {
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
        }
        if step:
            state["step"] = step
            state["epoch_logs"] = [{k: v.cpu() for k, v in d.items()} for d in logs]
        return state

    def try_resume(self) -> bool:
        path = self.job.run_dir / CHECKPOINT
        if not path.exists():
            return False
        state = load_torch(path)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s was written with other settings; starting this run from scratch", path)
            return False
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None:  # the fingerprint matched: the checkpoint holds its state
            self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state["history"])
        torch.set_rng_state(state["torch_rng"])
        self.start_epoch = state["epoch"] + 1
        self.start_step = int(state.get("step", 0))
        self._resumed_logs = [{k: v.to(self.rt.device) for k, v in d.items()} for d in state.get("epoch_logs", [])]
        log.info("resumed %s from epoch %d step %d", self.job.run_dir, state["epoch"] + 1, self.start_step)
        return True

    def budget(self) -> dict:
        """The run's training budget: compute is compared in optimiser steps, not epochs (extra pairs add steps)."""
        epochs = self.cfg["epochs"] if self.model.trains else 0
        mon = self._monitor
        return {"epochs": epochs, "batch_size": self.batch, "pairs_per_epoch": len(self.pairs),
                "steps_per_epoch": self.steps_per_epoch if epochs else 0, "optimizer_steps": self.steps_per_epoch * epochs,
                "pairs_seen": self.steps_per_epoch * epochs * self.batch,
                # The online kNN monitor: a small train-split bank queried by a test slice (not the knn stage).
                "monitor_bank": 0 if mon is None else len(mon[1]), "monitor_queries": 0 if mon is None else len(mon[3])}

    # --- monitoring ----------------------------------------------------------------------------
    def _monitor_sets(self, data: dict):
        n = int(self.cfg.get("knn_monitor", 0))
        if n <= 0:
            return None
        train_idx = data["splits"]["train"][:n]
        return (data["train_x"][train_idx], data["train_y"][train_idx].to(self.rt.device),
                data["test_x"][: max(1, n // 2)], data["test_y"][: max(1, n // 2)].to(self.rt.device))

    def knn_monitor(self) -> float:
        """Online kNN top-1 on a fixed slice (labels used only for this monitor; main process only)."""
        if self._monitor is None or not dist.is_main():
            return math.nan
        bx, by, qx, qy = self._monitor
        bb = self.model.backbone
        bank = extract(bb, bx, self.norm, self.rt.device)
        query = extract(bb, qx, self.norm, self.rt.device)
        return knn_accuracy(bank, by, query, qy, int(self.labels.max()) + 1)["top1"]

    # --- training ------------------------------------------------------------------------------
    def _step(self, epoch: int, step: int, pairs: torch.Tensor) -> dict[str, torch.Tensor]:
        gstep = epoch * self.steps_per_epoch + step
        lr = lr_at(gstep, self.total_steps, self.cfg["warmup_epochs"] * self.steps_per_epoch, self.base_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        lo = step * self.batch + self.rank * self.local_batch
        batch_pairs = pairs[lo:lo + self.local_batch].to(self.rt.device)
        gen = step_generator(self.rt.device, self.job.seed, epoch, step, self.rank)
        if self._views is None:
            x1 = augment_batch(self.images[batch_pairs[:, 0]], self.aug, self.size, gen, self.norm)
            x2 = augment_batch(self.images[batch_pairs[:, 1]], self.aug, self.size, gen, self.norm)
        else:
            got_step, views = next(self._views)
            if got_step != step:
                raise RuntimeError(f"view stream at step {got_step}, trainer at step {step}")
            x1 = augment_crops(views[:, 0], self.aug, gen, self.norm)
            x2 = augment_crops(views[:, 1], self.aug, gen, self.norm)
        if self.rt.channels_last:
            x1, x2 = x1.contiguous(memory_format=torch.channels_last), x2.contiguous(memory_format=torch.channels_last)
        batch = Batch(batch_pairs[:, 0], batch_pairs[:, 1], epoch, step, gstep / max(1, self.total_steps))
        with self.rt.autocast:
            out = self.wrapped(x1, x2, batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{self.job.settings['name']} seed {self.job.seed}: loss is {loss.item()} at epoch {epoch} "
                f"step {step}. The last good checkpoint (epoch {epoch - 1}) is kept in {self.job.run_dir}; "
                f"no final outputs were written. Fix: lower pretrain.lr (now {self.cfg['lr']}), add "
                f"warm-up (pretrain.warmup_epochs) or use runtime.precision: fp32."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        pairs_m = self.model.momentum_pairs()
        if pairs_m:
            ema_update(pairs_m, self.model.ema_momentum(batch.progress))
        # Scalars stay on the device until the epoch ends (no per-step host sync).
        return {k: v.detach().float() for k, v in out.items()}

    def view_stream(self, epoch: int, pairs: torch.Tensor, first_step: int = 0):
        """(step, uint8 views [local_batch, 2, 3, S, S]) of this rank's slice of every step from first_step."""
        from ..data.jpeg import CropSpec
        from ..data.loader import crop_stream

        steps = range(first_step, self.steps_per_epoch)

        def plan():
            for step in steps:
                lo = step * self.batch + self.rank * self.local_batch
                yield geometry_seed(self.job.seed, epoch, step, self.rank), pairs[lo:lo + self.local_batch]

        return zip(steps, crop_stream(self.images, plan(), CropSpec.of(self.aug), self.size, self.rt.device))

    def fit(self) -> dict:
        self.job.run_dir.mkdir(parents=True, exist_ok=True)
        self.try_resume()
        every = int(self.cfg.get("checkpoint_steps") or 0)
        self.model.train()
        epochs = self.cfg["epochs"] if self.model.trains else 0
        if not self.history:
            # Epoch 0: the initialisation, so convergence curves start from the same point.
            self.history.append({"epoch": 0, "steps": 0, "loss": math.nan, "knn_top1": self.knn_monitor(), "lr": 0.0,
                                 "seconds": 0.0, "pairs_per_s": 0.0})
        for epoch in range(self.start_epoch, epochs):
            t0 = time.perf_counter()
            pairs = self.pairs.for_epoch(self.job.seed, epoch)
            first = self.start_step if epoch == self.start_epoch else 0
            logs: list[dict[str, torch.Tensor]] = list(self._resumed_logs) if first else []
            if self.encoded:
                self._views = self.view_stream(epoch, pairs, first)
            # _step's copy, on the device once per epoch: a per-step copy of a pageable CPU slice makes the host
            # wait for the GPU (the view stream decodes from the CPU copy).
            step_pairs = pairs.to(self.rt.device)
            bar = tqdm(range(first, self.steps_per_epoch), disable=not self.rt.progress,
                       desc=f"{self.job.settings['name']} ep{epoch}", leave=False)
            for step in bar:
                if self.job.on_step:
                    self.job.on_step(epoch, step)
                logs.append(self._step(epoch, step, step_pairs))
                if every and (step + 1) % every == 0 and step + 1 < self.steps_per_epoch and dist.is_main():
                    save_torch(self._state(epoch - 1, step + 1, logs), self.job.run_dir / CHECKPOINT)
            self._views = None
            secs = time.perf_counter() - t0
            # Never empty: an epoch runs at least one step, and a resume inside one starts before its last.
            means = {k: torch.stack([d[k] for d in logs]).mean().item() for k in logs[0]}
            row = {"epoch": epoch + 1, "steps": (epoch + 1) * self.steps_per_epoch,
                   "loss": means["loss"], "knn_top1": self.knn_monitor(),
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(secs, 3),
                   "pairs_per_s": round(self.steps_per_epoch * self.batch / max(secs, 1e-9), 1)}
            # then the algorithm's diagnostics (neighbour purity, self-hit rate, positiveness weights)
            row.update({k: v for k, v in means.items() if k not in row})
            self.history.append(row)
            log.info("%s seed %d epoch %d/%d: %s", self.job.settings["name"], self.job.seed, epoch + 1, epochs,
                     rounded(self.history[-1]))
            if dist.is_main():
                save_torch(self._state(epoch), self.job.run_dir / CHECKPOINT)
            dist.barrier()
        return self.finish()

    def finish(self) -> dict:
        bb = self.model.backbone
        if not dist.is_main():
            dist.barrier()
            return {}
        meta = {**backbone_kwargs(self.job.settings["backbone"], bb.in_channels, self.size), "feat_dim": bb.feat_dim,
                "norm_mean": self.norm.mean.flatten().tolist(), "norm_std": self.norm.std.flatten().tolist(),
                "method": self.job.settings["name"], "algo": self.job.settings["algo"], "seed": self.job.seed}
        save_text(history_csv(self.history), self.job.run_dir / "history.csv")
        state = {k: v.detach().cpu() for k, v in bb.state_dict().items()}
        save_torch({"meta": meta, "state_dict": state}, self.job.run_dir / "backbone.pt")
        dist.barrier()
        return meta

