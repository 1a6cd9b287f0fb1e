"""Pack once: source images -> shards of JPEG bytes (sempos.data.shards), resumable, idempotent, atomic.

Each shard is a fixed, ordered chunk of the listing, so the same listing and settings always give the same
shards whatever the number of worker processes. A shard is written under a temporary name, renamed when
complete, and only then gets its sidecar; a rerun keeps every shard whose sidecar matches the plan and whose
bytes match the recorded sha256, reports and rewrites corrupt ones, and writes the rest. Every image is
decoded while packing: one that cannot be decoded stops the pack with its file name and the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DatasetError
from ..io import atomic_path, save_json
from .checksum import file_digest
from .jpeg import pack_image
from .shards import FORMAT, ShardTable, shard_name
from .sources import SourceItem, read_item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackSettings:
    max_side: int | None = None   # re-encode images whose shorter side is larger (None: keep originals)
    quality: int = 90             # JPEG quality of re-encoded images
    shard_images: int = 4096      # images per shard

    @classmethod
    def from_cfg(cls, cfg: dict | None) -> "PackSettings":
        cfg = dict(cfg or {})
        s = cls(cfg.get("max_side"), int(cfg.get("quality", 90)), int(cfg.get("shard_images", 4096)))
        if s.max_side is not None and int(s.max_side) < 16:
            raise DatasetError(f"data.pack.max_side {s.max_side} is too small (>= 16, or null to keep originals)")
        if not 1 <= s.quality <= 100 or s.shard_images < 1:
            raise DatasetError("data.pack.quality must be in 1..100 and data.pack.shard_images >= 1")
        return s


def _plan_digest(items: Sequence[SourceItem], settings: PackSettings) -> str:
    h = hashlib.sha256(json.dumps([FORMAT, asdict(settings)]).encode())
    for it in items:
        h.update(f"{it.name}\t{it.label}\t{it.size}\n".encode())
    return h.hexdigest()


def _sidecar_path(out_dir: Path, split: str, k: int) -> Path:
    return out_dir / shard_name(split, k).replace(".bin", ".json")


def _reusable(out_dir: Path, split: str, k: int, digest: str) -> dict | None:
    side, shard = _sidecar_path(out_dir, split, k), out_dir / shard_name(split, k)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("plan") != digest:
        return None
    if not shard.is_file() or shard.stat().st_size != meta.get("bytes") or file_digest(shard, "sha256") != meta["sha256"]:
        log.warning("shard %s does not match its recorded sha256 (corrupt or truncated); rewriting it", shard)
        return None
    return meta


def _write_shard(job) -> dict:
    items, split, k, out_dir, settings, digest, fix = job
    meta = _reusable(out_dir, split, k, digest)
    if meta is not None:
        return {**meta, "reused": True}
    torch.set_num_threads(1)
    shard = out_dir / shard_name(split, k)
    offsets, lengths, heights, widths = [], [], [], []
    reencoded, pos = 0, 0
    h = hashlib.sha256()
    handles: dict[str, object] = {}
    try:
        with atomic_path(shard) as tmp, open(tmp, "wb") as out:
            for it in items:
                fh = handles.get(it.path)
                if fh is None and it.size >= 0:
                    fh = handles[it.path] = open(it.path, "rb")
                try:
                    raw = read_item(it, fh)
                except OSError as exc:
                    raise DatasetError(f"cannot read {it.origin} ({exc}). {fix}") from None
                try:
                    packed = pack_image(raw, settings.max_side, settings.quality)
                except RuntimeError as exc:
                    raise DatasetError(f"{it.origin} cannot be decoded as an image ({str(exc).splitlines()[-1]}). "
                                       f"{fix}") from None
                out.write(packed.data)
                h.update(packed.data)
                offsets.append(pos)
                lengths.append(len(packed.data))
                heights.append(packed.height)
                widths.append(packed.width)
                reencoded += packed.reencoded
                pos += len(packed.data)
    finally:
        for fh in handles.values():
            fh.close()
    meta = {"format": FORMAT, "plan": digest, "count": len(items), "bytes": pos, "sha256": h.hexdigest(),
            "reencoded": reencoded, "offset": offsets, "length": lengths, "height": heights, "width": widths}
    save_json(meta, _sidecar_path(out_dir, split, k))  # last: the shard is complete
    return {**meta, "reused": False}


def pack_split(items: Sequence[SourceItem], split: str, out_dir: Path, settings: PackSettings, workers: int = 0,
               fix: str = "Fix: replace the file with a good copy, or delete it, then rerun the pack stage") -> tuple[ShardTable, dict]:
    """Write (or reuse) the shards of one split; returns its ShardTable and a summary."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = settings.shard_images
    chunks = [list(items[i:i + n]) for i in range(0, len(items), n)]
    jobs = [(c, split, k, out_dir, settings, _plan_digest(c, settings), fix) for k, c in enumerate(chunks)]
    quiet = bool(os.environ.get("CI")) or not os.isatty(2)
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            metas = list(tqdm(pool.map(_write_shard, jobs), total=len(jobs), desc=f"pack {split}", disable=quiet))
    else:
        metas = [_write_shard(j) for j in tqdm(jobs, desc=f"pack {split}", disable=quiet)]
    # Stale shards of an earlier, longer plan would otherwise be left lying around under final-looking names.
    for extra in sorted(out_dir.glob(f"{split}-*.bin")):
        k = int(extra.stem.split("-")[-1])
        if k >= len(jobs):
            extra.unlink()
            _sidecar_path(out_dir, split, k).unlink(missing_ok=True)
    table = ShardTable(
        out_dir, [shard_name(split, k) for k in range(len(jobs))], [m["bytes"] for m in metas],
        [m["sha256"] for m in metas],
        np.concatenate([np.full(m["count"], k, np.int32) for k, m in enumerate(metas)]) if metas else np.zeros(0, np.int32),
        np.concatenate([np.asarray(m["offset"], np.int64) for m in metas]) if metas else np.zeros(0, np.int64),
        np.concatenate([np.asarray(m["length"], np.int32) for m in metas]) if metas else np.zeros(0, np.int32),
        np.concatenate([np.asarray(m["height"], np.int32) for m in metas]) if metas else np.zeros(0, np.int32),
        np.concatenate([np.asarray(m["width"], np.int32) for m in metas]) if metas else np.zeros(0, np.int32),
        "\n".join(it.name for it in items).encode())
    summary = {"images": len(items), "shards": len(jobs), "bytes": int(sum(m["bytes"] for m in metas)),
               "reencoded": int(sum(m["reencoded"] for m in metas)), "reused": int(sum(m["reused"] for m in metas))}
    log.info("packed %s: %s", split, summary)
    return table, summary
