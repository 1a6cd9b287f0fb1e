"""The shard format and its reader: JPEG bytes in a few large files, an offset index, a sha256 per shard.

A split's images live in `<split>-00000.bin`, `<split>-00001.bin`, ... (the bytes of each image back to back),
each with a sidecar `<split>-00000.json` (written last: its presence marks the shard complete) holding the
shard's sha256 and every image's offset, length, height and width. The pack manifest
(data/shards/<ds>.pt) gathers the sidecars of every split into one `ShardTable` per split; prepared indexes
carry the same tables. `ShardImages` is the lazy, indexable view the loader, the trainer and the evaluations
take in place of a uint8 tensor.

  python -m sempos.data.shards verify data/shards/imagenet.pt   # sha256 of every shard
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError
from .checksum import file_digest

FORMAT = "sempos-jpeg-shards-v1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_OPEN = 256  # shard descriptors kept open per process


def shard_name(split: str, k: int) -> str:
    return f"{split}-{k:05d}.bin"


def repack_fix(shard_dir: Path) -> str:
    return (f"Fix: rerun the pack stage (snakemake --forcerun pack, or python -m sempos.stages.pack --params FILE "
            f"--ds NAME): it checks the sha256 of every shard in {shard_dir} and rewrites the corrupt ones")


@dataclass
class ShardTable:
    """Every image of one split: which shard, where in it, its size; and the shards' files and checksums."""

    root: Path                 # the shard directory
    files: list[str]
    nbytes: list[int]
    sha256: list[str]
    shard: np.ndarray          # int32 [N]
    offset: np.ndarray         # int64 [N]
    length: np.ndarray         # int32 [N]
    height: np.ndarray         # int32 [N]
    width: np.ndarray          # int32 [N]
    names_blob: bytes = b""    # image names joined by newlines (split on demand: 1.28M names are 40 MB)
    _names: list[str] | None = field(default=None, repr=False)
    _fds: dict = field(default_factory=dict, repr=False)
    _pid: int = field(default=-1, repr=False)

    def __len__(self) -> int:
        return len(self.offset)

    def to_dict(self) -> dict:
        """The picklable form stored in manifests and prepared indexes (root is stored relative by them)."""
        return {"files": list(self.files), "bytes": list(self.nbytes), "sha256": list(self.sha256),
                "shard": self.shard, "offset": self.offset, "length": self.length, "height": self.height,
                "width": self.width, "names": self.names_blob}

    @classmethod
    def from_dict(cls, d: dict, root: Path) -> "ShardTable":
        return cls(Path(root), list(d["files"]), list(d["bytes"]), list(d["sha256"]),
                   np.asarray(d["shard"], np.int32), np.asarray(d["offset"], np.int64),
                   np.asarray(d["length"], np.int32), np.asarray(d["height"], np.int32),
                   np.asarray(d["width"], np.int32), d.get("names", b""))

    def names(self) -> list[str]:
        if self._names is None:
            self._names = self.names_blob.decode().split("\n") if self.names_blob else [""] * len(self)
        return self._names

    def check_files(self) -> None:
        """Every shard is there with its recorded size (cheap; the sha256 check is `verify`)."""
        for f, n in zip(self.files, self.nbytes):
            p = self.root / f
            if not p.is_file():
                raise DatasetError(f"shard {p} is missing. " + repack_fix(self.root))
            if p.stat().st_size != n:
                raise DatasetError(f"shard {p} holds {p.stat().st_size} bytes, its index says {n} (truncated or "
                                   "overwritten). " + repack_fix(self.root))

    def verify(self) -> list[str]:
        """Shard files whose sha256 is not the recorded one (missing files count as bad)."""
        bad = []
        for f, h in zip(self.files, self.sha256):
            p = self.root / f
            if not p.is_file() or file_digest(p, "sha256") != h:
                bad.append(str(p))
        return bad

    def read(self, row: int) -> bytes:
        """The encoded bytes of image `row` (one pread; descriptors are per process, reopened after a fork)."""
        if self._pid != os.getpid():
            self._fds, self._pid = {}, os.getpid()
        s = int(self.shard[row])
        fd = self._fds.get(s)
        if fd is None:
            if len(self._fds) >= MAX_OPEN:  # many small shards: stay far below the per-process descriptor limit
                for old in self._fds.values():
                    os.close(old)
                self._fds.clear()
            try:
                fd = self._fds[s] = os.open(self.root / self.files[s], os.O_RDONLY)
            except OSError as exc:
                raise DatasetError(f"cannot open shard {self.root / self.files[s]} ({exc}). "
                                   + repack_fix(self.root)) from None
        n = int(self.length[row])
        data = os.pread(fd, n, int(self.offset[row]))
        if len(data) != n:
            raise DatasetError(f"shard {self.root / self.files[s]} ends before image {self.names()[row]} "
                               f"(offset {int(self.offset[row])}): truncated. " + repack_fix(self.root))
        return data

    def where(self, row: int) -> str:
        return (f"image {self.names()[row]} (shard {self.root / self.files[int(self.shard[row])]}, byte "
                f"{int(self.offset[row])})")

    def __getstate__(self):
        # Open descriptors do not cross process boundaries (DataLoader workers reopen their own).
        state = self.__dict__.copy()
        state["_fds"], state["_pid"], state["_names"] = {}, -1, None
        return state


class ShardImages:
    """Encoded images of one split: a lazy view that indexes like a tensor (a subset of rows), never decoded
    whole. `crop_size` is the training crop, `eval_resize` the test-time shorter side; mean/std the per-channel
    statistics the Normalizer uses."""

    channels = 3

    def __init__(self, table: ShardTable, rows: np.ndarray | None = None, crop_size: int = 224,
                 eval_resize: int = 256, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.table = table
        self.rows = np.arange(len(table), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.crop_size, self.eval_resize = int(crop_size), int(eval_resize)
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> "ShardImages":
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        rows = self.rows[idx]
        return ShardImages(self.table, np.atleast_1d(rows), self.crop_size, self.eval_resize, self.mean, self.std)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, 3, crop, crop): the shape of the batches the loader makes from these images."""
        return (len(self), 3, self.crop_size, self.crop_size)

    def sizes(self) -> torch.Tensor:
        """[N, 2] (height, width) of every image, as stored."""
        return torch.from_numpy(np.stack([self.table.height[self.rows], self.table.width[self.rows]], 1)).long()

    def names(self) -> list[str]:
        all_names = self.table.names()
        return [all_names[r] for r in self.rows.tolist()]


def is_encoded(images) -> bool:
    return isinstance(images, ShardImages)


def images_of(payload: dict, index_path: Path, split: str) -> ShardImages:
    """The ShardImages of a prepared index's train or test split, shard files checked."""
    root = (Path(index_path).parent / payload["shard_dir"]).resolve()
    table = ShardTable.from_dict(payload[f"{split}_x"], root)
    table.check_files()
    return ShardImages(table, None, payload["image_size"], payload["eval_resize"], payload["norm_mean"],
                       payload["norm_std"])


def main(argv: list[str] | None = None) -> int:
    from ..io import load_torch

    ap = argparse.ArgumentParser(prog="python -m sempos.data.shards")
    ap.add_argument("what", choices=["verify"])
    ap.add_argument("manifest", help="a pack manifest (data/shards/<ds>.pt) or a prepared index")
    args = ap.parse_args(argv)
    path = Path(args.manifest)
    if not path.is_file():
        print(f"{path} not found", file=sys.stderr)
        return 2
    blob = load_torch(path)
    root = (path.parent / blob["shard_dir"]).resolve()
    tables = {s: blob["splits"][s] for s in blob["splits"]} if "splits" in blob else \
        {"train": blob["train_x"], "test": blob["test_x"]}
    bad = []
    for split, d in tables.items():
        t = ShardTable.from_dict(d, root)
        bad += t.verify()
        print(f"{split}: {len(t.files)} shards, {len(t)} images checked")
    if bad:
        print(f"{len(bad)} corrupt or missing shard(s):\n  " + "\n  ".join(bad) + "\n" + repack_fix(root),
              file=sys.stderr)
        return 1
    print("all shards match their sha256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
