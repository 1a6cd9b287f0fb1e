"""Where encoded images come from: tar archives read in place, and class-folder trees.

A SourceItem names one image and where its bytes are: a file, or a byte range of an uncompressed tar (the
official ImageNet train tar is a tar of per-class tars; both levels are indexed once by their headers, so
any image is one seek + read away and the 147 GB archive is never extracted).
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class SourceItem:
    name: str          # the image's name in the dataset, e.g. "n01440764/n01440764_10026.JPEG"
    label: int
    path: str          # the file holding its bytes
    offset: int = 0
    size: int = -1     # -1: the whole file

    @property
    def origin(self) -> str:
        """Where a person finds the image (for error messages)."""
        return self.path if self.size < 0 else f"{self.path} (member {self.name} at byte {self.offset})"


def read_item(item: SourceItem, fh=None) -> bytes:
    """The item's bytes; `fh` is an open binary handle of item.path to reuse."""
    if item.size < 0:
        return Path(item.path).read_bytes()
    own = fh is None
    fh = fh or open(item.path, "rb")
    try:
        fh.seek(item.offset)
        data = fh.read(item.size)
    finally:
        if own:
            fh.close()
    if len(data) != item.size:
        raise DatasetError(f"{item.origin}: read {len(data)} of {item.size} bytes (truncated archive). "
                           f"Fix: replace {item.path} with a complete copy")
    return data


def _open_tar(fileobj, what: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=fileobj, mode="r:")
    except tarfile.TarError as exc:
        raise DatasetError(f"{what} is not an uncompressed tar archive ({exc}); replace it with the official file")


def tar_members(path: Path) -> Iterator[tuple[str, int, int]]:
    """(member name, absolute data offset, size) of every regular file in an uncompressed tar."""
    with open(path, "rb") as fh, _open_tar(fh, str(path)) as tf:
        try:
            for m in tf:
                if m.isfile():
                    yield m.name, m.offset_data, m.size
        except tarfile.TarError as exc:
            raise DatasetError(f"{path} is truncated or corrupt ({exc}); replace it with the official file")


def nested_tar_members(path: Path) -> Iterator[tuple[str, str, int, int]]:
    """(outer member, inner member, absolute offset, size) for a tar of tars (ImageNet's train archive)."""
    with open(path, "rb") as fh, _open_tar(fh, str(path)) as outer:
        for m in outer:
            if not m.isfile():
                continue
            if not m.name.endswith(".tar"):
                raise DatasetError(f"{path}: member {m.name} is not a per-class .tar; is this ILSVRC2012_img_train.tar?")
            inner_fh = outer.extractfile(m)
            with _open_tar(inner_fh, f"{path}:{m.name}") as inner:
                try:
                    for im in inner:
                        if im.isfile():
                            yield m.name, im.name, m.offset_data + im.offset_data, im.size
                except tarfile.TarError as exc:
                    raise DatasetError(f"{path}:{m.name} is truncated or corrupt ({exc}); replace {path} with "
                                       "the official file")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def class_tree(root: Path, classes: Iterable[str] | None = None) -> dict[str, list[Path]]:
    """{class folder: sorted image files} of root/<class>/*; `classes` limits and orders the folders."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    if classes is None:
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    out = {}
    for c in classes:
        d = root / c
        if not d.is_dir():
            raise DatasetError(f"class folder {d} is missing")
        out[c] = sorted((Path(e.path) for e in os.scandir(d) if e.is_file() and is_image_file(e.name)),
                        key=lambda p: p.name)
    return out


def tree_items(tree: dict[str, list[Path]], labels: dict[str, int]) -> list[SourceItem]:
    return [SourceItem(f"{c}/{p.name}", labels[c], str(p)) for c, files in tree.items() for p in files]
