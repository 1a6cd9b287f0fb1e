"""The streaming loader for encoded images: views cropped at decode time, the same batch whatever the workers.

The caller hands over a plan: for each step, a geometry seed and the positions of the images to view (pairs
[n, 2] or singles [n]). The main process draws every crop box and flip from torch.Generator(seed) against each
image's own size (sempos.data.jpeg.crop_boxes) before any byte is decoded, so a step's crops are a pure function
of (seed, positions) and identical with 0, 1 or 16 workers, on resume, and on every DDP rank count for the
rank's own slice. Decoding then runs in one of two places:

  device  batched decode_jpeg(list, device=...) (nvJPEG on CUDA) and crops on the device, while one reader
          thread fetches the next steps' bytes (the CUDA default; `runtime.decode: device` forces it on CPU)
  cpu     worker processes (a torch DataLoader over the plan's tasks; shared-memory results) decode, crop,
          resize and flip to fixed-size uint8; 0 workers decodes in-process

Either way the photometric augmentation (jitter, grayscale, blur, solarize) runs batched on the device
afterwards (sempos.augment.augment_crops). Memory is bounded by `prefetch` steps in flight, never by the
dataset. An (i, i) pair decodes its image once and crops both views from it; an (i, j) pair reads two images.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from ..errors import DatasetError, InvalidValueError, SemposError
from .jpeg import (
    CropSpec,
    as_tensor,
    crop_boxes,
    crop_resize,
    decode_rgb,
    resize_center_crop,
)
from .shards import ShardImages, ShardTable


@dataclass
class LoaderSettings:
    workers: int | str = "auto"   # decode processes on the CPU path; auto: the process's cores - 1
    decode: str = "auto"          # auto (device on CUDA, cpu otherwise) | cpu | device
    prefetch: int = 2             # steps in flight

    def resolved_workers(self) -> int:
        if self.workers != "auto":
            return max(0, int(self.workers))
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
        per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        return max(0, per_process - 1)


SETTINGS = LoaderSettings()


def configure(workers: int | str | None = None, decode: str | None = None, prefetch: int | None = None) -> None:
    """Process-wide loader choices (sempos.runtime.resolve sets them from params.runtime)."""
    if workers is not None:
        SETTINGS.workers = workers
    if decode is not None:
        if decode not in ("auto", "cpu", "device"):
            raise InvalidValueError(f"runtime.decode must be auto, cpu or device, not {decode!r}")
        SETTINGS.decode = decode
    if prefetch is not None:
        SETTINGS.prefetch = max(1, int(prefetch))


@dataclass(frozen=True)
class Task:
    """One unit of decoding: table rows in output order and, per row, a crop box + flip (or the eval transform)."""

    rows: np.ndarray
    boxes: np.ndarray | None   # [m, 4] top, left, height, width; None: resize `resize` + centre crop `size`
    flips: np.ndarray | None
    size: int
    resize: int = 0


def _decode_error(table: ShardTable, row: int, exc: Exception) -> DatasetError:
    from .shards import repack_fix

    return DatasetError(f"{table.where(row)} cannot be decoded ({str(exc).splitlines()[-1]}): the shard is corrupt. "
                        + repack_fix(table.root))


def _view(img: torch.Tensor, task: Task, k: int) -> torch.Tensor:
    if task.boxes is None:
        return resize_center_crop(img, task.resize, task.size)
    return crop_resize(img, task.boxes[k], task.size, bool(task.flips[k]))


def run_task(table: ShardTable, task: Task) -> torch.Tensor:
    """Decode on the CPU (each distinct image once) and return uint8 [m, 3, size, size]."""
    out = torch.empty(len(task.rows), 3, task.size, task.size, dtype=torch.uint8)
    uniq, inv = np.unique(task.rows, return_inverse=True)
    for j, row in enumerate(uniq.tolist()):
        try:
            img = decode_rgb(table.read(row))
        except RuntimeError as exc:
            raise _decode_error(table, row, exc) from None
        for k in np.flatnonzero(inv == j).tolist():
            out[k] = _view(img, task, k)
    return out


def decode_batch(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Decode a list of JPEGs on `device` in one call: torchcodec's decoder when installed (torchvision's image
    decoders are deprecated since 0.29 in its favour), else torchvision's batched nvJPEG / CPU path."""
    try:
        from torchcodec.decoders import decode_jpeg as codec_jpeg
    except ImportError:
        codec_jpeg = None
    if codec_jpeg is not None:
        try:
            out = codec_jpeg(datas, mode="RGB", device=device)
            return list(out) if isinstance(out, (list, tuple)) else [out]
        except (TypeError, ValueError):  # a torchcodec without list input: one call per image
            return [codec_jpeg(d, mode="RGB", device=device) for d in datas]
    import torchvision.io

    return torchvision.io.decode_jpeg(datas, mode=torchvision.io.ImageReadMode.RGB, device=device)


def run_task_on(table: ShardTable, task: Task, datas: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The device path of one task: a batched decode of its distinct images on `device`, then the crops there."""
    uniq, inv = np.unique(task.rows, return_inverse=True)
    try:
        imgs = decode_batch(datas, device)
    except RuntimeError as exc:
        for row, data in zip(uniq.tolist(), datas):  # find the culprit on the CPU, to name it
            try:
                decode_rgb(data)
            except RuntimeError as cpu_exc:
                raise _decode_error(table, row, cpu_exc) from None
        raise DatasetError(f"batched JPEG decoding on {device} failed ({str(exc).splitlines()[-1]}) on images the "
                           "CPU decodes. Fix: set runtime.decode: cpu") from None
    return torch.stack([_view(imgs[int(inv[k])], task, k) for k in range(len(task.rows))])


class _TaskSet(torch.utils.data.Dataset):
    def __init__(self, table: ShardTable) -> None:
        self.table = table

    def __getitem__(self, task: Task):
        try:
            return run_task(self.table, task)
        except SemposError as exc:
            return str(exc)  # raised again, as itself, in the main process (a worker traceback is no help)


def _init_worker(_):
    torch.set_num_threads(1)


def _unwrap(out):
    if isinstance(out, str):
        raise DatasetError(out)
    return out


def decodes_on_device(device) -> bool:
    device = torch.device(device)
    return SETTINGS.decode == "device" or (SETTINGS.decode == "auto" and device.type == "cuda")


def execute(table: ShardTable, tasks: Iterable[Task], device: torch.device, per_step: int = 1) -> Iterator[torch.Tensor]:
    """Run tasks in order; yield each one's uint8 views on `device`. `per_step` tasks make one step, so about
    `prefetch` steps are decoded ahead."""
    device = torch.device(device)
    if decodes_on_device(device):
        yield from _device_iter(table, tasks, device)
        return
    workers = SETTINGS.resolved_workers()
    if workers == 0:
        for t in tasks:
            yield run_task(table, t).to(device)
        return
    in_flight = max(1, SETTINGS.prefetch * per_step)
    loader = torch.utils.data.DataLoader(
        _TaskSet(table), batch_size=None, sampler=tasks, num_workers=workers,
        prefetch_factor=max(1, -(-in_flight // workers)),
        pin_memory=device.type == "cuda", worker_init_fn=_init_worker, multiprocessing_context="fork")
    for out in loader:
        yield _unwrap(out).to(device, non_blocking=True)


def _device_iter(table: ShardTable, tasks: Iterable[Task], device: torch.device) -> Iterator[torch.Tensor]:
    """One background thread reads a task's bytes and decodes + crops them on `device`, on a side CUDA stream,
    while the caller's stream computes the previous step; `prefetch` tasks are in flight."""
    cuda = device.type == "cuda"
    side = torch.cuda.Stream(device) if cuda else None

    def work(task: Task):
        datas = [as_tensor(table.read(int(r))) for r in np.unique(task.rows).tolist()]
        if not cuda:
            return run_task_on(table, task, datas, device), None
        with torch.cuda.device(device), torch.cuda.stream(side):  # this thread's current device is not the rank's
            out = run_task_on(table, task, datas, device)
            done = torch.cuda.Event()
            done.record(side)
        return out, done

    it = iter(tasks)
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(1) as pool:
        for _ in range(SETTINGS.prefetch):
            task = next(it, None)
            if task is None:
                break
            pending.append(pool.submit(work, task))
        while pending:
            out, done = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(work, nxt))
            if done is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(done)
                out.record_stream(current)  # the side stream's allocator must not reuse it while we compute
            yield out


# --- plans -> tasks -> views ----------------------------------------------------------------------------------


def _chunks(n: int, device) -> int:
    # The device path decodes a step in one batched call; the CPU path splits a step over its workers, so
    # about `prefetch` steps are in flight.
    if decodes_on_device(device):
        return 1
    return max(1, min(n, SETTINGS.resolved_workers() or 1))


def crop_stream(images: ShardImages, plan: Iterable[tuple[int, torch.Tensor]], spec: CropSpec, size: int,
                device) -> Iterator[torch.Tensor]:
    """For each (seed, positions) of `plan`: uint8 views [n, 3, S, S] (positions [n]) or [n, 2, 3, S, S]
    (positions [n, 2]: both views of each pair) on `device`. Positions index `images`."""
    counts: collections.deque = collections.deque()
    hw = images.sizes()

    def tasks():
        for seed, pos in plan:
            pos = torch.as_tensor(pos).long().cpu()
            pairs = pos.ndim == 2
            cols = pos.view(-1, 2).t() if pairs else pos.view(1, -1)
            gen = torch.Generator().manual_seed(int(seed))
            boxes, flips = [], []
            for c in cols:  # view 1 of every pair, then view 2
                b, f = crop_boxes(hw[c], spec, gen)
                boxes.append(b)
                flips.append(f)
            # Interleaved per pair (a0, b0, a1, b1, ...), so a chunk holds both views of its pairs.
            rows = torch.from_numpy(images.rows[cols.t().reshape(-1).numpy()])
            box = torch.stack(boxes, 1).reshape(-1, 4)
            flip = torch.stack(flips, 1).reshape(-1)
            n = pos.shape[0]
            k = _chunks(n, device)
            edges = [round(i * n / k) for i in range(k + 1)]
            per = cols.shape[0]
            counts.append((n, pairs, k))
            for a, b in zip(edges[:-1], edges[1:]):
                sl = slice(a * per, b * per)
                yield Task(rows[sl].numpy(), box[sl].numpy(), flip[sl].numpy(), size)

    per_step = max(1, SETTINGS.resolved_workers()) if not decodes_on_device(device) else 1
    stream = execute(images.table, tasks(), device, per_step)
    while True:
        first = next(stream, None)
        if first is None:
            return
        n, pairs, k = counts.popleft()
        parts = [first] + [next(stream) for _ in range(k - 1)]
        out = parts[0] if k == 1 else torch.cat(parts)
        yield out.view(n, 2, *out.shape[1:]) if pairs else out


def eval_batches(images: ShardImages, batch_size: int, device) -> Iterator[torch.Tensor]:
    """uint8 [b, 3, crop, crop] test-time views (shorter side to eval_resize, central crop) in order."""
    n = len(images)
    k = max(1, SETTINGS.resolved_workers())
    step = max(1, min(batch_size, -(-n // k)))

    def tasks():
        for s in range(0, n, step):
            yield Task(images.rows[s:s + step], None, None, images.crop_size, images.eval_resize)

    buf, have = [], 0
    for out in execute(images.table, tasks(), device):
        buf.append(out)
        have += len(out)
        while have >= batch_size:
            cat = torch.cat(buf) if len(buf) > 1 else buf[0]
            yield cat[:batch_size]
            rest = cat[batch_size:]
            buf, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield torch.cat(buf) if len(buf) > 1 else buf[0]
