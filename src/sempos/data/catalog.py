"""The dataset catalog: every dataset sempos knows, by name, listed explicitly (no registration on import).

`CATALOG` maps a name to its DatasetSpec (files, checksums, loader: sempos.data.spec); each family's spec
lives in its own module under sempos.data.loaders. A new dataset is one line here plus its module.

Transfer suite (docs/science.md §4.4; `extras["transfer"]`), its standard splits and reported metric:

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
Kornblith et al. 2019, the protocol SimCLR/BYOL/NNCLR report. Where a dataset publishes a validation split
(Flowers valid, DTD val1, Aircraft val, VOC07 val) the loader marks it (`Arrays.val_idx`) and the transfer
protocol chooses its regularisation there; elsewhere prepare draws a fixed stratified split of train. Nothing
is ever selected on the test split.

Checksums: FGVC Aircraft has no checksum pinned by torchvision, so sempos will not download it until the user
supplies the sha256 of a copy they trust (SEMPOS_AIRCRAFT_SHA256). Stanford Cars' official URLs are dead; its
md5s are the ones torchvision 0.13-0.15 pinned, so a copy placed in data/raw/cars/ is still verified.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .loaders import aircraft, caltech101, cars, cifar, digits, dtd, flowers102, fmnist, food101, pets, stl10, voc
from .spec import Arrays, DatasetSpec

CATALOG: dict[str, DatasetSpec] = {
    # the default pretraining dataset (cifar10, cifar100 and stl10 pretrain too: data.pretrain)
    "fmnist": fmnist.SPEC,
    # the transfer suite, docs/science.md §4.4
    "cifar10": cifar.CIFAR10,
    "cifar100": cifar.CIFAR100,
    "stl10": stl10.SPEC,
    "food101": food101.SPEC,
    "flowers102": flowers102.SPEC,
    "pets": pets.SPEC,
    "dtd": dtd.SPEC,
    "caltech101": caltech101.SPEC,
    "aircraft": aircraft.SPEC,
    "cars": cars.SPEC,
    "voc2007": voc.CLASSIFICATION,
    # a tiny bundled target (no download)
    "digits": digits.SPEC,
    # detection, docs/science.md §4.5
    "voc0712": voc.DETECTION,
}

# docs/science.md §4.4: the subset to run when compute is short.
MINIMUM_SUBSET = ("cifar10", "cifar100", "stl10", "caltech101", "flowers102", "pets", "dtd")
# Transfer targets that are splits of another dataset, not downloads of their own: target -> dataset.
DERIVED_TARGETS = {"fmnist_heldout": "fmnist"}


def get(name: str) -> DatasetSpec:
    if name not in CATALOG:
        raise DatasetError(f"unknown dataset '{name}'; the catalog has: {sorted(CATALOG)}")
    return CATALOG[name]


def names() -> list[str]:
    return sorted(CATALOG)


def transfer_sets() -> tuple[str, ...]:
    """The transfer suite (docs/science.md §4.4), in catalog order."""
    return tuple(n for n, s in CATALOG.items() if s.is_transfer)


def transfer_targets() -> list[str]:
    """Everything `eval.transfer.targets` accepts: every classification dataset plus the derived targets."""
    return sorted([n for n, s in CATALOG.items() if s.kind == "classification"] + list(DERIVED_TARGETS))


def dataset_of_target(target: str) -> str:
    """The dataset a transfer target reads (fmnist_heldout is a split of fmnist, not a separate download)."""
    return DERIVED_TARGETS.get(target, target)


def detection_sets() -> list[str]:
    return sorted(n for n, s in CATALOG.items() if s.kind == "detection")


def metric_of(name: str) -> str:
    """The number a transfer dataset reports: 'top1', 'mean_per_class' or 'voc07_map' (top1 if unflagged)."""
    return get(dataset_of_target(name)).extras.get("metric", "top1")


def load_transfer(name: str, raw_dir: Path, size: int | None = None, resize: str = "center_crop") -> Arrays:
    """Load transfer dataset `name` from its download directory at `size` px (None: the dataset's default)."""
    spec = get(name)
    if not spec.is_transfer:
        raise DatasetError(f"'{name}' is not a transfer dataset; choose one of {list(transfer_sets())}")
    return spec.loader(Path(raw_dir), size=int(size or spec.extras["image_size"]), resize=resize)


TRANSFER_SETS = transfer_sets()
