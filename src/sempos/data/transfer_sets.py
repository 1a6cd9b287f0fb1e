"""The transfer datasets of docs/science.md §4.4: official files, the checksums torchvision pins, and loaders.

Each dataset is a registry entry (sempos.data.registry) with its official URL(s) and the md5 that torchvision
pins for every file (torchvision 0.29 unless noted), so `fetch_dataset` downloads and verifies it like any
other. Its loader extracts the verified archives once, atomically, into data/raw/.extracted/<name>/ (checked
against the sha256s the download stage recorded in MANIFEST.json), and returns `Arrays`: uint8 NCHW RGB images
resized to a square `size` (PIL bicubic; by default the shorter side is resized and the centre square kept,
the standard ImageNet-style evaluation transform) and int64 labels, on each dataset's standard split:

  name        train split used                     test split used        metric (extras["metric"])
  cifar10     data_batch_1..5 (50,000)             test_batch (10,000)    top1
  cifar100    train (50,000), fine labels          test (10,000)          top1
  stl10       train (5,000, all 10 folds)          test (8,000)           top1   (unlabeled split not loaded)
  food101     meta/train.json (75,750)             meta/test.json (25,250) top1
  flowers102  setid trnid + valid (2,040)          tstid (6,149)          mean_per_class
  pets        annotations/trainval.txt (3,680)     test.txt (3,669)       mean_per_class
  dtd         labels/train1 + val1 (3,760)         test1 (1,880)          top1
  caltech101  30 random images per class (3,060)   the rest (6,084)       mean_per_class
  aircraft    images_variant_trainval (6,667)      images_variant_test    mean_per_class  (100 variants)
  cars        devkit cars_train_annos (8,144)      cars_test_annos_withlabels (8,041)  top1
  voc2007     VOCtrainval ImageSets/Main/trainval  VOCtest .../test       voc07_map (multi-label)

Train+val merges and the Caltech-101 protocol (30 per class, all 102 folders incl. BACKGROUND_Google) follow
Kornblith et al. 2019, the protocol SimCLR/BYOL/NNCLR report. Validation splits for model selection are
drawn from the train split by sempos.data.prepare, never from the test split.

VOC2007 labels are [N, 20] in {1 positive, 0 negative, -1 difficult-only (ignored by the metric)}, read from
the devkit's per-class ImageSets files; score them with sempos.eval.transfer_metrics.voc07_11point_map.

Checksums: FGVC Aircraft has no checksum pinned by torchvision (it downloads it unverified), so sempos will
not download it until the user supplies the sha256 of a copy they trust, in the environment variable
SEMPOS_AIRCRAFT_SHA256. Stanford Cars' official URLs are dead (torchvision 0.16+ no longer downloads it); its
md5s are the ones torchvision 0.13-0.15 pinned, so a copy placed in data/raw/cars/ is still verified.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gzip
import json
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import DatasetError
from .checksum import file_digest
from .registry import Arrays, DatasetSpec, RemoteFile, get, register

# Extractions live in data/raw/.extracted/<name>/<archive stem>/: beside, not inside, the download stage's output
# directory data/raw/<name>/, which DVC and Snakemake track (writing into it would mark download out of date).
EXTRACTED = ".extracted"
MARKER = ".sempos-extracted.json"  # written last inside the extraction: its presence means "complete"
RESIZE_MODES = ("center_crop", "stretch")
AIRCRAFT_SHA256_ENV = "SEMPOS_AIRCRAFT_SHA256"
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


# --- verified, atomic extraction ------------------------------------------------------------------------------


def _stem(archive_name: str) -> str:
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        if archive_name.endswith(ext):
            return archive_name[: -len(ext)]
    return archive_name


def _skipped(member: str, skip: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(member, pat) for pat in skip)


def _check_member(name: str, archive: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DatasetError(f"{archive.name} holds an unsafe member path '{name}'; refusing to extract it")


def _unpack(archive: Path, into: Path, skip: Sequence[str]) -> None:
    """Extract `archive` (tar, tar.gz/tgz or zip) into `into`, member by member; corrupt data raises DatasetError."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, archive)
                    if not _skipped(info.filename, skip):
                        zf.extract(info, into)  # reads the member fully: a CRC mismatch raises BadZipFile
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                for member in tf:  # streaming: a truncated gzip stream raises at the point it ends
                    _check_member(member.name, archive)
                    if _skipped(member.name, skip):
                        continue
                    if hasattr(tarfile, "data_filter"):
                        # The "data" filter also refuses links out of the tree, devices and setuid bits.
                        tf.extract(member, into, filter="data")
                    else:  # Python < 3.11.4: only regular files and directories, paths checked above
                        if not (member.isfile() or member.isdir()):
                            raise DatasetError(f"{archive.name}: member '{member.name}' is a link or device")
                        tf.extract(member, into)
        else:
            raise DatasetError(f"{archive.name} is not a readable tar or zip archive (corrupt or truncated)")
    except _CORRUPT as exc:
        raise DatasetError(f"{archive.name} is corrupt or truncated ({type(exc).__name__}: {exc})") from exc


def extract_archive(archive: Path, dest: Path, *, skip: Sequence[str] = (), inner: Sequence[str] = (),
                    stamp: dict | None = None) -> Path:
    """Extract `archive` into directory `dest` atomically and return `dest`.

    Work happens in a hidden sibling `.<dest>.*.partial` directory; MARKER (holding `stamp`) is written last and
    the directory renamed onto `dest`, so `dest` either holds a complete extraction of this very archive or does
    not exist. A `dest` whose marker holds the same stamp is reused; one with another stamp or no marker (an
    extraction of an older archive) is replaced. `skip`: fnmatch patterns of members not to extract (e.g.
    STL-10's 2.6 GB unlabeled split). `inner`: archives inside the archive to extract in place, then delete.
    Assumes one process extracts a given `dest` at a time (one prepare job per dataset).
    """
    archive, dest = Path(archive), Path(dest)
    if stamp is None:
        st = archive.stat()
        stamp = {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    stamp = {**stamp, "skip": sorted(skip), "inner": list(inner)}
    if _marker(dest) == stamp:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*.partial"):  # left by a killed earlier run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        _unpack(archive, tmp, skip)
        for rel in inner:
            nested = tmp / rel
            if not nested.is_file():
                raise DatasetError(f"{archive.name} does not contain {rel}; it is not the expected archive")
            _unpack(nested, nested.parent, ())
            nested.unlink()  # the extracted copy is what loaders read; keep the disk footprint down
        (tmp / MARKER).write_text(json.dumps(stamp, sort_keys=True))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except DatasetError as exc:
        raise DatasetError(f"{exc}. Nothing was extracted. Fix: delete {archive} and rerun the download stage "
                           f"(it refetches and verifies the file)") from exc.__cause__
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _marker(dest: Path) -> dict | None:
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _manifest_sha256(raw_dir: Path, name: str) -> str:
    manifest = raw_dir / "MANIFEST.json"
    try:
        files = json.loads(manifest.read_text())["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{manifest} missing or unreadable: run the download stage for '{raw_dir.name}' "
                           "first (it verifies every file and writes the manifest last)") from exc
    if name not in files:
        raise DatasetError(f"{manifest} does not list {name}: rerun the download stage for '{raw_dir.name}'")
    return files[name]


def verified_file(raw_dir: Path, name: str) -> Path:
    """raw_dir/name, checked against the sha256 the download stage recorded after verifying it."""
    raw_dir = Path(raw_dir)
    want = _manifest_sha256(raw_dir, name)
    path = raw_dir / name
    if not path.is_file():
        raise DatasetError(f"{path} is missing: rerun the download stage for '{raw_dir.name}'")
    got = file_digest(path, "sha256")
    if got != want:
        raise DatasetError(f"{path} changed after it was downloaded and verified (sha256 {got[:16]}... vs "
                           f"MANIFEST {want[:16]}...). Fix: delete it and rerun the download stage")
    return path


def extraction_root(raw_dir: Path) -> Path:
    """Where the archives of the dataset downloaded to raw_dir (data/raw/<name>) are extracted."""
    raw_dir = Path(raw_dir)
    return raw_dir.parent / EXTRACTED / raw_dir.name


def extracted(raw_dir: Path, archive_name: str, *, skip: Sequence[str] = (), inner: Sequence[str] = ()) -> Path:
    """The extraction of a downloaded archive: reused if complete for the manifest's sha256, else made now."""
    raw_dir = Path(raw_dir)
    stamp = {"archive": archive_name, "sha256": _manifest_sha256(raw_dir, archive_name)}
    dest = extraction_root(raw_dir) / _stem(archive_name)
    if _marker(dest) == {**stamp, "skip": sorted(skip), "inner": list(inner)}:
        return dest
    return extract_archive(verified_file(raw_dir, archive_name), dest, skip=skip, inner=inner, stamp=stamp)


# --- images ---------------------------------------------------------------------------------------------------


def _resample(im, size: int, resize: str) -> np.ndarray:
    from PIL import Image

    w, h = im.size
    if resize == "center_crop":
        m = min(w, h)
        box = ((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m)
    else:
        box = (0, 0, w, h)
    if (w, h) != (size, size) or box != (0, 0, w, h):
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def _check_resize(size: int, resize: str) -> None:
    if resize not in RESIZE_MODES:
        raise DatasetError(f"unknown resize mode '{resize}'; choose one of {RESIZE_MODES}")
    if int(size) < 1:
        raise DatasetError(f"image size must be positive, got {size}")


def _load_image(path: Path, size: int, resize: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            # JPEG only: decode at a reduced DCT scale, never below twice the target size (fast on 512 px photos).
            im.draft(None, (2 * size, 2 * size))
            return _resample(im.convert("RGB"), size, resize)
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DatasetError(f"cannot decode image {path} ({exc}); the extraction may be damaged: delete "
                           f"data/raw/{EXTRACTED}/<name>/ and rerun prepare") from exc


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def load_images(paths: Sequence[Path], size: int, resize: str = "center_crop") -> np.ndarray:
    """Decode and resize images in parallel (PIL releases the GIL); uint8 [N, 3, size, size], input order."""
    _check_resize(size, resize)
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(_threads()) as pool:
        for i, arr in enumerate(pool.map(lambda p: _load_image(Path(p), size, resize), paths)):
            out[i] = arr
    return out


def resize_array(x: np.ndarray, size: int, resize: str = "center_crop") -> np.ndarray:
    """uint8 NCHW RGB array -> contiguous uint8 [N, 3, size, size]; no resampling when already that size."""
    from PIL import Image

    _check_resize(size, resize)
    if x.shape[-2:] == (size, size):
        return np.ascontiguousarray(x)
    out = np.empty((len(x), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(_threads()) as pool:
        for i, arr in enumerate(pool.map(lambda im: _resample(Image.fromarray(im.transpose(1, 2, 0)), size, resize),
                                         x)):
            out[i] = arr
    return out


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _arrays(train_x, train_y, test_x, test_y, classes) -> Arrays:
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"{split} split: {len(x)} images but {len(y)} labels; the extraction is incomplete")
    return Arrays(train_x, np.asarray(train_y, dtype=np.int64), test_x, np.asarray(test_y, dtype=np.int64),
                  tuple(str(c) for c in classes))


def _loadmat(path: Path) -> dict:
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # scipy comes with scikit-learn, a dependency; say so if it is missing anyway
        raise DatasetError(f"reading {path.name} needs scipy: pip install scipy") from exc
    return loadmat(path, squeeze_me=True)


# --- loaders: (raw_dir, size, resize) -> Arrays ----------------------------------------------------------------


def _unpickle(path: Path) -> dict:
    # CIFAR ships as Python pickles; the archive was verified against torchvision's md5 before extraction.
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _cifar(raw: Path, size: int, resize: str, archive: str, folder: str, train: Sequence[str], test: Sequence[str],
           label_key: str, meta: str, names_key: str) -> Arrays:
    root = extracted(raw, archive) / folder

    def part(files):
        xs, ys = [], []
        for f in files:
            d = _unpickle(root / f)
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(d[label_key])
        return resize_array(np.concatenate(xs), size, resize), ys

    (tx, ty), (vx, vy) = part(train), part(test)
    return _arrays(tx, ty, vx, vy, _unpickle(root / meta)[names_key])


def load_cifar10(raw: Path, size: int = 32, resize: str = "center_crop") -> Arrays:
    return _cifar(Path(raw), size, resize, "cifar-10-python.tar.gz", "cifar-10-batches-py",
                  [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta", "label_names")


def load_cifar100(raw: Path, size: int = 32, resize: str = "center_crop") -> Arrays:
    return _cifar(Path(raw), size, resize, "cifar-100-python.tar.gz", "cifar-100-python", ["train"], ["test"],
                  "fine_labels", "meta", "fine_label_names")


def load_stl10(raw: Path, size: int = 64, resize: str = "center_crop", unlabeled: bool = False) -> Arrays:
    """train/test (labelled); with `unlabeled`, also the 100,000-image unlabeled split (pretraining only)."""
    skip = () if unlabeled else ("*/unlabeled_X.bin",)
    root = extracted(Path(raw), "stl10_binary.tar.gz", skip=skip) / "stl10_binary"

    def images(split):
        # Column-major 96x96 planes, as torchvision reads them.
        raw_x = np.fromfile(root / f"{split}_X.bin", dtype=np.uint8)
        if raw_x.size % (3 * 96 * 96):
            raise DatasetError(f"{root / f'{split}_X.bin'} holds {raw_x.size} bytes, not a whole number of 3x96x96 "
                               "images: the extraction is incomplete; delete data/raw/stl10 and download again")
        return resize_array(raw_x.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), size, resize)

    def part(split):
        y = np.fromfile(root / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1  # labels are 1-based
        return images(split), y

    (tx, ty), (vx, vy) = part("train"), part("test")
    arrays = _arrays(tx, ty, vx, vy, _lines(root / "class_names.txt"))
    return dataclasses.replace(arrays, unlabeled_x=images("unlabeled")) if unlabeled else arrays


def load_food101(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    root = extracted(Path(raw), "food-101.tar.gz") / "food-101"
    meta = {s: json.loads((root / "meta" / f"{s}.json").read_text()) for s in ("train", "test")}
    classes = sorted(meta["train"])  # torchvision's class order

    def part(split):
        items = [(rel, c) for c, rels in sorted(meta[split].items()) for rel in rels]
        x = load_images([root / "images" / f"{rel}.jpg" for rel, _ in items], size, resize)
        return x, [classes.index(c) for _, c in items]

    (tx, ty), (vx, vy) = part("train"), part("test")
    return _arrays(tx, ty, vx, vy, classes)


def load_flowers102(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    raw = Path(raw)
    jpg = extracted(raw, "102flowers.tgz") / "jpg"
    labels = np.atleast_1d(_loadmat(verified_file(raw, "imagelabels.mat"))["labels"]).astype(np.int64) - 1
    sets = _loadmat(verified_file(raw, "setid.mat"))

    def part(keys):
        ids = np.concatenate([np.atleast_1d(sets[k]).astype(np.int64) for k in keys])  # 1-based image ids
        return load_images([jpg / f"image_{i:05d}.jpg" for i in ids], size, resize), labels[ids - 1]

    (tx, ty), (vx, vy) = part(("trnid", "valid")), part(("tstid",))
    return _arrays(tx, ty, vx, vy, [str(c) for c in range(1, int(labels.max()) + 2)])


def load_pets(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    raw = Path(raw)
    images = extracted(raw, "images.tar.gz") / "images"
    ann = extracted(raw, "annotations.tar.gz") / "annotations"
    names: dict[int, str] = {}

    def part(split):
        rows = [ln.split() for ln in _lines(ann / f"{split}.txt")]  # "<image id> <class 1..37> <species> <breed>"
        for r in rows:
            names[int(r[1]) - 1] = " ".join(w.title() for w in r[0].rsplit("_", 1)[0].split("_"))
        return load_images([images / f"{r[0]}.jpg" for r in rows], size, resize), [int(r[1]) - 1 for r in rows]

    (tx, ty), (vx, vy) = part("trainval"), part("test")
    return _arrays(tx, ty, vx, vy, [names[i] for i in sorted(names)])


def load_dtd(raw: Path, size: int = 64, resize: str = "center_crop", partition: int = 1) -> Arrays:
    root = extracted(Path(raw), "dtd-r1.0.1.tar.gz") / "dtd"
    lists = {s: _lines(root / "labels" / f"{s}{partition}.txt") for s in ("train", "val", "test")}
    classes = sorted({rel.split("/")[0] for rels in lists.values() for rel in rels})

    def part(rels):
        return load_images([root / "images" / rel for rel in rels], size, resize), \
            [classes.index(rel.split("/")[0]) for rel in rels]

    (tx, ty), (vx, vy) = part(lists["train"] + lists["val"]), part(lists["test"])
    return _arrays(tx, ty, vx, vy, classes)


def load_caltech101(raw: Path, size: int = 64, resize: str = "center_crop", train_per_class: int = 30) -> Arrays:
    root = extracted(Path(raw), "caltech-101.zip", inner=("caltech-101/101_ObjectCategories.tar.gz",),
                     skip=("__MACOSX/*", "caltech-101/Annotations.tar")) / "caltech-101" / "101_ObjectCategories"
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rng = np.random.default_rng(0)  # the fixed per-class 30-image draw (Kornblith et al. 2019)
    train, test = [], []
    for c, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() == ".jpg")
        if len(files) <= train_per_class:
            raise DatasetError(f"Caltech-101 class {name} has {len(files)} images, not more than the "
                               f"{train_per_class} training images per class; the extraction is incomplete")
        pick = set(rng.choice(len(files), size=train_per_class, replace=False).tolist())
        for i, f in enumerate(files):
            (train if i in pick else test).append((f, c))
    tx = load_images([f for f, _ in train], size, resize)
    vx = load_images([f for f, _ in test], size, resize)
    return _arrays(tx, [c for _, c in train], vx, [c for _, c in test], classes)


def load_aircraft(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    data = extracted(Path(raw), "fgvc-aircraft-2013b.tar.gz") / "fgvc-aircraft-2013b" / "data"
    classes = _lines(data / "variants.txt")
    index = {c: i for i, c in enumerate(classes)}

    def part(split):
        rows = [ln.split(" ", 1) for ln in _lines(data / f"images_variant_{split}.txt")]
        return load_images([data / "images" / f"{i}.jpg" for i, _ in rows], size, resize), [index[v] for _, v in rows]

    (tx, ty), (vx, vy) = part("trainval"), part("test")
    return _arrays(tx, ty, vx, vy, classes)


def load_cars(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    raw = Path(raw)
    devkit = extracted(raw, "car_devkit.tgz") / "devkit"
    classes = np.atleast_1d(_loadmat(devkit / "cars_meta.mat")["class_names"]).tolist()

    def part(images: Path, annos: Path):
        rows = np.atleast_1d(_loadmat(annos)["annotations"])
        x = load_images([images / str(r["fname"]) for r in rows], size, resize)
        return x, [int(r["class"]) - 1 for r in rows]  # classes are 1-based in the devkit

    tx, ty = part(extracted(raw, "cars_train.tgz") / "cars_train", devkit / "cars_train_annos.mat")
    vx, vy = part(extracted(raw, "cars_test.tgz") / "cars_test", verified_file(raw, "cars_test_annos_withlabels.mat"))
    return _arrays(tx, ty, vx, vy, classes)


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
_VOC_FLAG = {"1": 1, "-1": 0, "0": -1}  # devkit: 1 present, -1 absent, 0 only difficult objects -> ignored


def load_voc2007(raw: Path, size: int = 64, resize: str = "center_crop") -> Arrays:
    raw = Path(raw)

    def part(archive, split):
        root = extracted(raw, archive) / "VOCdevkit" / "VOC2007"
        main = root / "ImageSets" / "Main"
        ids = _lines(main / f"{split}.txt")
        pos = {i: n for n, i in enumerate(ids)}
        y = np.full((len(ids), len(VOC_CLASSES)), -2, dtype=np.int64)
        for c, name in enumerate(VOC_CLASSES):
            for ln in _lines(main / f"{name}_{split}.txt"):
                img, flag = ln.split()
                y[pos[img], c] = _VOC_FLAG[flag]
        if (y == -2).any():
            raise DatasetError(f"VOC2007 {split}: per-class lists do not cover every image; the extraction is damaged")
        return load_images([root / "JPEGImages" / f"{i}.jpg" for i in ids], size, resize), y

    (tx, ty), (vx, vy) = part("VOCtrainval_06-Nov-2007.tar", "trainval"), part("VOCtest_06-Nov-2007.tar", "test")
    return _arrays(tx, ty, vx, vy, VOC_CLASSES)


# --- registration -----------------------------------------------------------------------------------------------


def _file(name: str, urls: Iterable[str], md5: str | None = None, sha256: str | None = None) -> RemoteFile:
    return RemoteFile(name=name, urls=tuple(urls), md5=(md5,) if md5 else (), sha256=(sha256,) if sha256 else ())


def _register(name: str, description: str, files: Sequence[RemoteFile], loader: Callable[..., Arrays], metric: str,
              split: str, num_classes: int, image_size: int, local_hint: str = "", **extras) -> DatasetSpec:
    return register(DatasetSpec(
        name=name, description=description, files=tuple(files), loader=loader,
        local_hint=local_hint or f"place the official files in data/raw/{name}/ (they are checked by checksum)",
        extras={"metric": metric, "split": split, "num_classes": num_classes, "image_size": image_size,
                "multilabel": False, "transfer": True, "checksum": "md5 pinned by torchvision", **extras},
    ))


_TORONTO = "https://www.cs.toronto.edu/~kriz/"
_register("cifar10", "CIFAR-10 (Krizhevsky 2009): 50k/10k 32x32 RGB, 10 classes",
          [_file("cifar-10-python.tar.gz", [_TORONTO + "cifar-10-python.tar.gz"],
                 md5="c58f30108f718f92721af3b95e74349a")],
          load_cifar10, "top1", "train 50,000 / test 10,000", 10, 32)
_register("cifar100", "CIFAR-100 (Krizhevsky 2009): 50k/10k 32x32 RGB, 100 fine classes",
          [_file("cifar-100-python.tar.gz", [_TORONTO + "cifar-100-python.tar.gz"],
                 md5="eb9058c3a382ffc7106e4002c42a8d85")],
          load_cifar100, "top1", "train 50,000 / test 10,000 (fine labels)", 100, 32)
_register("stl10", "STL-10 (Coates et al. 2011): 5k/8k labelled 96x96 RGB, 10 classes",
          [_file("stl10_binary.tar.gz", ["http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"],
                 md5="91f7769df0f17e558f3565bffb0c7dfb")],
          load_stl10, "top1", "train 5,000 / test 8,000 (unlabeled split not loaded)", 10, 64)
_register("food101", "Food-101 (Bossard et al. 2014): 75,750/25,250 images, 101 classes",
          [_file("food-101.tar.gz", ["http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"],
                 md5="85eeb15f3717b99a5da872d97d918f87")],
          load_food101, "top1", "meta/train.json 75,750 / meta/test.json 25,250", 101, 64)
_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
_register("flowers102", "Oxford Flowers-102 (Nilsback & Zisserman 2008): 8,189 images, 102 classes",
          [_file("102flowers.tgz", [_FLOWERS + "102flowers.tgz"], md5="52808999861908f626f3c1f4e79d11fa"),
           _file("imagelabels.mat", [_FLOWERS + "imagelabels.mat"], md5="e0620be6f572b9609742df49c70aed4d"),
           _file("setid.mat", [_FLOWERS + "setid.mat"], md5="a5357ecc9cb78c4bef273ce3793fc85c")],
          load_flowers102, "mean_per_class", "trnid+valid 2,040 / tstid 6,149", 102, 64)
_PETS = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"
_register("pets", "Oxford-IIIT Pets (Parkhi et al. 2012): 3,680/3,669 images, 37 breeds",
          [_file("images.tar.gz", [_PETS + "images.tar.gz"], md5="5c4f3ee8e5d25df40f4fd59a7f44e54c"),
           _file("annotations.tar.gz", [_PETS + "annotations.tar.gz"], md5="95a8c909bbe2e81eed6a22bccdf3f68f")],
          load_pets, "mean_per_class", "trainval 3,680 / test 3,669", 37, 64)
_register("dtd", "Describable Textures (Cimpoi et al. 2014): 5,640 images, 47 classes",
          [_file("dtd-r1.0.1.tar.gz", ["https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"],
                 md5="fff73e5086ae6bdbea199a49dfb8a4c1")],
          load_dtd, "top1", "partition 1: train1+val1 3,760 / test1 1,880", 47, 64)
_register("caltech101", "Caltech-101 (Fei-Fei et al. 2004): 9,144 images, 101 classes + background",
          [_file("caltech-101.zip", ["https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"],
                 md5="3138e1922a9193bfa496528edbbc45d0")],
          load_caltech101, "mean_per_class", "30 random images per class (seed 0) / the rest; 102 folders", 102, 64)

# FGVC Aircraft: torchvision pins NO checksum (fgvc_aircraft.py calls download_and_extract_archive without md5).
# sempos never accepts an unverified file, and does not invent a checksum: the download stage fetches it only
# once the user supplies the sha256 of a copy they trust (the URL list stays empty until then, so nothing is
# downloaded in vain and the error names this fix).
_AIRCRAFT_URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"


def aircraft_file(sha256: str | None) -> RemoteFile:
    """The FGVC Aircraft archive entry: downloadable and verifiable only with a user-supplied sha256."""
    sha = (sha256 or "").strip().lower() or None
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise DatasetError(f"{AIRCRAFT_SHA256_ENV}='{sha256}' is not a sha256 hex digest (64 hex digits)")
    return _file("fgvc-aircraft-2013b.tar.gz", [_AIRCRAFT_URL] if sha else [], sha256=sha)


_AIRCRAFT = aircraft_file(os.environ.get(AIRCRAFT_SHA256_ENV))
_register("aircraft", "FGVC Aircraft 2013b (Maji et al. 2013): 6,667/3,333 images, 100 variants",
          [_AIRCRAFT],
          load_aircraft, "mean_per_class", "images_variant_trainval 6,667 / images_variant_test 3,333", 100, 64,
          local_hint=(f"no checksum is pinned for FGVC Aircraft (torchvision pins none). Download {_AIRCRAFT_URL}, "
                      f"check it, then export {AIRCRAFT_SHA256_ENV}=<its sha256> and rerun the download stage"),
          checksum="user-supplied sha256" if _AIRCRAFT.sha256 else "missing: supply " + AIRCRAFT_SHA256_ENV)

# Stanford Cars: md5s pinned by torchvision 0.13-0.15 (stanford_cars.py). The ai.stanford.edu URLs are dead since
# 2023 (torchvision 0.16+ refuses to download); a verified local copy in data/raw/cars/ is the way in.
_CARS = "https://ai.stanford.edu/~jkrause/"
_register("cars", "Stanford Cars (Krause et al. 2013): 8,144/8,041 images, 196 classes",
          [_file("car_devkit.tgz", [_CARS + "cars/car_devkit.tgz",
                                    "https://github.com/pytorch/vision/files/11644847/car_devkit.tgz"],
                 md5="c3b158d763b6e2245038c8ad08e45376"),
           _file("cars_train.tgz", [_CARS + "car196/cars_train.tgz"], md5="065e5b463ae28d29e77c1b4b166cfe61"),
           _file("cars_test.tgz", [_CARS + "car196/cars_test.tgz"], md5="4ce7ebf6a94d07f1952d94dd34c4d501"),
           _file("cars_test_annos_withlabels.mat", [_CARS + "car196/cars_test_annos_withlabels.mat"],
                 md5="b0a2b23655a3edd16d84508592a98d10")],
          load_cars, "top1", "cars_train 8,144 / cars_test 8,041", 196, 64,
          local_hint="the official URLs are offline; copy car_devkit.tgz, cars_train.tgz, cars_test.tgz and "
                     "cars_test_annos_withlabels.mat (the original files: checked against torchvision's md5s) "
                     "into data/raw/cars/",
          checksum="md5 pinned by torchvision 0.13-0.15 (official URLs offline)")

_VOC = ("https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/", "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/")
_register("voc2007", "PASCAL VOC2007 classification (Everingham et al. 2010): 5,011/4,952 images, 20 labels",
          [_file("VOCtrainval_06-Nov-2007.tar", [u + "VOCtrainval_06-Nov-2007.tar" for u in _VOC],
                 md5="c52e279531787c972589f7e41ab4ae64"),
           _file("VOCtest_06-Nov-2007.tar", [u + "VOCtest_06-Nov-2007.tar" for u in _VOC],
                 md5="b6e924de25625d8de591ea690078ad9f")],
          load_voc2007, "voc07_map", "trainval 5,011 / test 4,952; labels [N, 20] in {1, 0, -1 difficult}", 20, 64,
          multilabel=True)

TRANSFER_SETS = ("cifar10", "cifar100", "stl10", "food101", "flowers102", "pets", "dtd", "caltech101", "aircraft",
                 "cars", "voc2007")
# docs/science.md §4.4: the subset to run when compute is short.
MINIMUM_SUBSET = ("cifar10", "cifar100", "stl10", "caltech101", "flowers102", "pets", "dtd")


def metric_of(name: str) -> str:
    """The number a transfer dataset reports: 'top1', 'mean_per_class' or 'voc07_map' (top1 if unflagged)."""
    return get(name).extras.get("metric", "top1")


def load_transfer(name: str, raw_dir: Path, size: int | None = None, resize: str = "center_crop") -> Arrays:
    """Load transfer dataset `name` from its download directory at `size` px (None: the dataset's default)."""
    spec = get(name)
    if not spec.extras.get("transfer"):
        raise DatasetError(f"'{name}' is not a transfer dataset; choose one of {list(TRANSFER_SETS)}")
    return spec.loader(Path(raw_dir), size=int(size or spec.extras["image_size"]), resize=resize)
