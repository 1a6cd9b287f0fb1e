"""SimCLR's official ImageNet 1 % / 10 % label subsets (docs/science.md §4.3), verified by sha256.

The lists are google-research/simclr `imagenet_subsets/1percent.txt` (12,811 lines) and `10percent.txt`
(128,116 lines): one ImageNet-1k train file name per line, e.g. `n01440764_10026.JPEG`. The same lists are what
TFDS's `imagenet2012_subset` and the BYOL / NNCLR / mmselfsup semi-supervised benchmarks use.

The sha256s below were computed from the files as committed in that repository (their only version, added in
commit be133b38fb21abb77403391dc6db3412edfe92f2 and unchanged at 383d414; sizes 260,323 and 2,603,168 bytes,
md5 b61c91b8ddb75fabdb02a9bb2ae3bd74 and b0d861160cc9531910d069ff547fc1b6). The commit-pinned URL comes first,
so a later change to the branch cannot silently change the subset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DatasetError
from .spec import Arrays, DatasetSpec, RemoteFile

_COMMIT = "be133b38fb21abb77403391dc6db3412edfe92f2"
_RAW = "https://raw.githubusercontent.com/google-research/simclr/{ref}/imagenet_subsets/{name}"

SUBSET_FILES: dict[int, RemoteFile] = {
    1: RemoteFile(
        name="1percent.txt",
        urls=(_RAW.format(ref=_COMMIT, name="1percent.txt"), _RAW.format(ref="master", name="1percent.txt")),
        sha256=("71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17",),
    ),
    10: RemoteFile(
        name="10percent.txt",
        urls=(_RAW.format(ref=_COMMIT, name="10percent.txt"), _RAW.format(ref="master", name="10percent.txt")),
        sha256=("6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091",),
    ),
}
EXPECTED_LINES = {1: 12_811, 10: 128_116}
_NAME = re.compile(r"^(n\d{8})_\d+\.JPEG$")


def _no_images(_raw: Path) -> Arrays:
    raise DatasetError("imagenet_subsets holds label-subset lists, not images; use read_subset_list()")


# Not in the catalog (it has no images); a spec only so download.fetch_file can verify and place it.
SPEC = DatasetSpec(
    name="imagenet_subsets",
    description="SimCLR's ImageNet 1% / 10% label subset lists (google-research/simclr imagenet_subsets/)",
    files=tuple(SUBSET_FILES.values()),
    loader=_no_images,
    local_hint="copy imagenet_subsets/1percent.txt and 10percent.txt from a clone of google-research/simclr "
               "(they are checked by sha256)",
)


def _percent(percent) -> int:
    p = float(percent)
    if p not in (1.0, 10.0):
        raise DatasetError(f"SimCLR publishes 1% and 10% ImageNet subsets only, not {percent}%")
    return int(p)


def fetch_subset_list(percent, dest_dir: Path) -> Path:
    """Download (or reuse) the verified list file for `percent` (1 or 10) into dest_dir."""
    from .download import fetch_file

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    return fetch_file(SPEC, SUBSET_FILES[_percent(percent)], dest_dir)


def parse_subset_list(text: str, percent) -> list[str]:
    """File names of a subset list, validated: line count, name format, no duplicates."""
    p = _percent(percent)
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(names) != EXPECTED_LINES[p]:
        raise DatasetError(f"the {p}% subset list has {len(names)} entries, expected {EXPECTED_LINES[p]} "
                           "(truncated or not SimCLR's list)")
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise DatasetError(f"the {p}% subset list has {len(bad)} malformed entries, e.g. {bad[:3]}")
    if len(set(names)) != len(names):
        raise DatasetError(f"the {p}% subset list repeats {len(names) - len(set(names))} file names")
    return names


def read_subset_list(path: Path, percent, verify: bool = True) -> list[str]:
    """Parse a subset list file; with verify, its sha256 must be the published one (else DatasetError)."""
    path = Path(path)
    spec_file = SUBSET_FILES[_percent(percent)]
    if verify and not spec_file.verify(path):
        raise DatasetError(f"{path} is not SimCLR's {percent}% list (sha256 mismatch or missing). Fix: delete it "
                           "and fetch it again with fetch_subset_list")
    return parse_subset_list(path.read_text(), percent)


def subset_indices(names: Sequence[str], train_files: Iterable[str | os.PathLike]) -> np.ndarray:
    """Indices into `train_files` (an ImageNet train file list, e.g. 'n01440764/n01440764_10026.JPEG' or full
    paths, in the order the train split is stored) of the subset's file names, sorted ascending.

    Matching is by base name; a file whose class folder disagrees with its name's wnid is an error, and so is a
    subset name missing from the list (a partial ImageNet copy would otherwise shrink the subset silently).
    """
    where: dict[str, int] = {}
    for i, f in enumerate(train_files):
        p = Path(f)
        m = _NAME.match(p.name)
        if m and p.parent.name.startswith("n") and p.parent.name != m.group(1):
            raise DatasetError(f"train file {f} is filed under class {p.parent.name}, but its name says {m.group(1)}")
        if p.name in where:
            raise DatasetError(f"the train file list holds {p.name} twice")
        where[p.name] = i
    missing = [n for n in names if n not in where]
    if missing:
        raise DatasetError(f"{len(missing)} of the {len(names)} subset images are not in the ImageNet train list, "
                           f"e.g. {missing[:3]}; the ImageNet copy is incomplete or not ILSVRC-2012 train")
    return np.sort(np.fromiter((where[n] for n in names), dtype=np.int64, count=len(names)))


def load_subset(percent, dest_dir: Path, train_files: Iterable[str | os.PathLike]) -> np.ndarray:
    """Fetch + verify + parse SimCLR's `percent`% list and map it to indices of `train_files`."""
    path = fetch_subset_list(percent, dest_dir)
    return subset_indices(read_subset_list(path, percent), train_files)
