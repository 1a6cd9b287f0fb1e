"""ImageNet (ILSVRC-2012), ImageNet-100 and generic class folders as lists of encoded images.

ImageNet needs a manual download. `data.root` holds either the three official archives (read in place) or an
already extracted tree (`train/<wnid>/*.JPEG`; `val/<wnid>/*.JPEG`, or a flat `val/` with the devkit for its
labels), as most clusters keep it. Labels are the sorted wnids (the torchvision/ImageFolder order); the
official validation set is the test split. ImageNet-100 is the CMC 100-class list (imagenet100.txt, pinned
by sha256): the same images, filtered to its classes.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from .checksum import file_digest
from .sources import SourceItem, class_tree, is_image_file, nested_tar_members, tar_members, tree_items

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
MD5 = {TRAIN_TAR: "1d675b47d978889d74fa0da5fadfb00e", VAL_TAR: "29b22e2961454d5413ddabcf34fc5622",
       DEVKIT: "fa75699e90414af021442c21a62c3abf"}
SIZES = {TRAIN_TAR: "138 GB", VAL_TAR: "6.3 GB", DEVKIT: "2.5 MB"}
COUNTS = {"imagenet": (1_281_167, 50_000), "imagenet100": (126_689, 5_000)}
NUM_CLASSES = {"imagenet": 1000, "imagenet100": 100}
DEVKIT_META = "ILSVRC2012_devkit_t12/data/meta.mat"
DEVKIT_GT = "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
_VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")

# The CMC ImageNet-100 classes (docs/data.md: source and checksum).
IMAGENET100_FILE = Path(__file__).with_name("imagenet100.txt")
IMAGENET100_SHA256 = "79f3f1552ccc478ce24bd934b4573625db584ddc1f4643ae23c994a94cb11397"


def manual_steps(root: Path) -> str:
    files = "\n".join(f"       {n} ({SIZES[n]}, md5 {MD5[n]})" for n in (TRAIN_TAR, VAL_TAR, DEVKIT))
    return ("ImageNet (ILSVRC-2012) needs a manual download:\n"
            "  1. sign in at https://image-net.org/download-images.php and accept the terms of access;\n"
            f"  2. download the 2012 files\n{files}\n"
            f"  3. put the three files in {root} (or set data.root to the folder holding them), or point data.root "
            "at an extracted tree with train/<wnid>/*.JPEG and val/ (class folders, or flat with the devkit beside "
            "it); then rerun the download stage.")


def imagenet100_classes() -> list[str]:
    raw = IMAGENET100_FILE.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != IMAGENET100_SHA256:
        raise DatasetError(f"{IMAGENET100_FILE} has sha256 {digest}, not the pinned CMC list's "
                           f"{IMAGENET100_SHA256}; restore it from the repository (git checkout)")
    return raw.decode().split()


@dataclass
class Listing:
    """A dataset's images: class names (label order), train and test items, and where they came from."""

    classes: list[str]
    train: list[SourceItem]
    test: list[SourceItem]
    source: dict = field(default_factory=dict)


# --- the devkit ---------------------------------------------------------------------------------------------


def _devkit_files(root: Path) -> tuple[bytes, bytes]:
    """(meta.mat bytes, ground-truth text bytes) from the devkit archive or an extracted devkit folder."""
    archive = root / DEVKIT
    if archive.is_file():
        try:
            with tarfile.open(archive, "r:gz") as tf:
                return tf.extractfile(DEVKIT_META).read(), tf.extractfile(DEVKIT_GT).read()
        except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
            raise DatasetError(f"{archive} is not the ILSVRC-2012 devkit ({exc}); expected md5 {MD5[DEVKIT]}. "
                               "Fix: download it again from image-net.org") from None
    meta, gt = root / DEVKIT_META, root / DEVKIT_GT
    if meta.is_file() and gt.is_file():
        return meta.read_bytes(), gt.read_bytes()
    raise DatasetError(f"the validation images in {root} are not in class folders and the devkit ({DEVKIT} or "
                       f"{Path(DEVKIT_META).parent}/) is not in {root}, so their labels are unknown.\n"
                       + manual_steps(root))


def parse_devkit(meta_mat: bytes, ground_truth: bytes) -> list[str]:
    """The wnid of every validation image, in file order (ILSVRC2012_val_00000001.JPEG first)."""
    from scipy.io import loadmat

    synsets = loadmat(io.BytesIO(meta_mat), squeeze_me=True)["synsets"]
    leaf = [i for i, c in enumerate(synsets["num_children"]) if int(c) == 0]
    id_to_wnid = {int(synsets["ILSVRC2012_ID"][i]): str(synsets["WNID"][i]) for i in leaf}
    try:
        ids = [int(line) for line in ground_truth.decode().split()]
        return [id_to_wnid[i] for i in ids]
    except (ValueError, KeyError) as exc:
        raise DatasetError(f"the devkit's validation ground truth names an unknown class id ({exc}); "
                           "the devkit is not ILSVRC-2012's") from None


# --- layouts ------------------------------------------------------------------------------------------------


def layout(root: Path) -> str:
    if (root / TRAIN_TAR).exists() or (root / VAL_TAR).exists():
        return "archives"
    if (root / "train").is_dir():
        return "tree"
    raise DatasetError(f"no ImageNet found in {root}: neither {TRAIN_TAR} nor a train/ folder.\n" + manual_steps(root))


def verify_archives(root: Path) -> dict:
    """md5 of the three official archives; a missing or wrong file raises with the manual steps."""
    out = {}
    for name in (TRAIN_TAR, VAL_TAR, DEVKIT):
        path = root / name
        if not path.is_file():
            raise DatasetError(f"{path} is missing.\n" + manual_steps(root))
        md5 = file_digest(path, "md5")
        if md5 != MD5[name]:
            raise DatasetError(f"{path} has md5 {md5}, expected {MD5[name]} (a partial or different download). "
                               f"Fix: download {name} again.\n" + manual_steps(root))
        out[name] = {"md5": md5, "bytes": path.stat().st_size}
    return out


def _archive_listing(root: Path, classes: list[str] | None) -> Listing:
    wanted = None if classes is None else set(classes)
    train_raw: dict[str, list[tuple[str, int, int]]] = {}
    for outer, inner, off, size in nested_tar_members(root / TRAIN_TAR):
        wnid = outer[:-len(".tar")]
        if (wanted is None or wnid in wanted) and is_image_file(inner):
            train_raw.setdefault(wnid, []).append((Path(inner).name, off, size))
    names = sorted(train_raw) if classes is None else list(classes)
    missing = [c for c in names if c not in train_raw]
    if missing:
        raise DatasetError(f"{root / TRAIN_TAR} holds no images of {len(missing)} classes, e.g. {missing[:3]}")
    labels = {c: i for i, c in enumerate(sorted(names))}
    train = [SourceItem(f"{c}/{n}", labels[c], str(root / TRAIN_TAR), off, size)
             for c in sorted(names) for n, off, size in sorted(train_raw[c])]
    wnids = parse_devkit(*_devkit_files(root))
    test = []
    for name, off, size in sorted(tar_members(root / VAL_TAR)):
        m = _VAL_NAME.match(Path(name).name)
        if not m:
            continue
        k = int(m.group(1)) - 1
        if k >= len(wnids):
            raise DatasetError(f"{root / VAL_TAR}: {name} has no devkit label (the ground truth lists {len(wnids)})")
        if wnids[k] in labels:
            test.append(SourceItem(Path(name).name, labels[wnids[k]], str(root / VAL_TAR), off, size))
    return Listing(sorted(names), train, test, {"layout": "archives", "root": str(root)})


def _tree_listing(root: Path, classes: list[str] | None) -> Listing:
    train_dir, val_dir = root / "train", root / "val"
    names = classes if classes is not None else sorted(
        p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    labels = {c: i for i, c in enumerate(sorted(names))}
    train = tree_items(class_tree(train_dir, sorted(names)), labels)
    if not val_dir.is_dir():
        raise DatasetError(f"{val_dir} is missing: the extracted ImageNet tree needs train/ and val/.\n"
                           + manual_steps(root))
    flat = sorted(p for p in val_dir.iterdir() if p.is_file() and is_image_file(p.name))
    if flat:
        wnids = parse_devkit(*_devkit_files(root))
        test = []
        for p in flat:
            m = _VAL_NAME.match(p.name)
            if not m or int(m.group(1)) > len(wnids):
                raise DatasetError(f"{p} is not an ILSVRC-2012 validation file name with a devkit label")
            w = wnids[int(m.group(1)) - 1]
            if w in labels:
                test.append(SourceItem(p.name, labels[w], str(p)))
    else:
        present = {p.name for p in val_dir.iterdir() if p.is_dir()}
        test = tree_items(class_tree(val_dir, [c for c in sorted(names) if c in present]), labels)
    return Listing(sorted(names), train, test, {"layout": "tree", "root": str(root)})


def imagenet_listing(root: Path, name: str = "imagenet") -> Listing:
    """The ImageNet (or ImageNet-100) images under root, checked against the official counts."""
    root = Path(root)
    classes = imagenet100_classes() if name == "imagenet100" else None
    kind = layout(root)
    listing = _archive_listing(root, classes) if kind == "archives" else _tree_listing(root, classes)
    check_counts(listing, name, root)
    return listing


def check_counts(listing: Listing, name: str, root: Path) -> None:
    """A partial copy fails here: the 1 %/10 % lists and every published number assume all images."""
    if name not in COUNTS:
        return
    want_train, want_test = COUNTS[name]
    got = (len(listing.classes), len(listing.train), len(listing.test))
    if got != (NUM_CLASSES[name], want_train, want_test):
        raise DatasetError(f"{root} holds {got[0]} classes, {got[1]} train and {got[2]} validation images for "
                           f"{name}; ILSVRC-2012 has {NUM_CLASSES[name]}, {want_train} and {want_test}. The copy is "
                           f"incomplete or not ILSVRC-2012.\n" + manual_steps(root))


def folder_listing(root: Path, holdout: float = 0.1) -> Listing:
    """Any class-folder tree: root/train/<class>/* (+ optional root/val/<class>/*), or root/<class>/* directly.

    Without a val tree, a class-balanced `holdout` share of each class (at least one image, fixed by seed 0)
    becomes the test split.
    """
    import numpy as np

    root = Path(root)
    train_dir = root / "train" if (root / "train").is_dir() else root
    tree = class_tree(train_dir)
    tree = {c: f for c, f in tree.items() if f}
    if not tree:
        raise DatasetError(f"{train_dir} has no class folders with .jpg/.jpeg/.png images; expected "
                           f"{train_dir}/<class>/<image>.jpg")
    classes = sorted(tree)
    labels = {c: i for i, c in enumerate(classes)}
    val_dir = root / "val"
    if train_dir != root and val_dir.is_dir():
        vtree = class_tree(val_dir)
        unknown = sorted(set(c for c, f in vtree.items() if f) - set(classes))
        if unknown:
            raise DatasetError(f"{val_dir} has classes that train/ lacks: {unknown[:5]}; every val class needs "
                               "training images")
        return Listing(classes, tree_items(tree, labels), tree_items(vtree, labels),
                       {"layout": "folders", "root": str(root), "test": "val/"})
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in classes:
        files = tree[c]
        if len(files) < 2:
            raise DatasetError(f"class {c} in {train_dir} has {len(files)} image; with no val/ tree each class "
                               "needs at least 2 (one is held out as test)")
        n_test = max(1, int(round(holdout * len(files))))
        held = set(rng.choice(len(files), size=n_test, replace=False).tolist())
        for k, p in enumerate(files):
            (test if k in held else train).append(SourceItem(f"{c}/{p.name}", labels[c], str(p)))
    return Listing(classes, train, test, {"layout": "folders", "root": str(root),
                                          "test": f"{holdout:.0%} of each class (seed 0)"})
