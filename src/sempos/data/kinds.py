"""Which datasets are encoded (JPEG, streamed from shards) rather than in-memory tensors. Import-light: the
stage table reads it."""

ENCODED = ("imagenet", "imagenet100", "imagefolder")
# Where each looks for its images when data.root is not set (outside data/raw/<ds>/, the download stage's output).
DEFAULT_ROOTS = {"imagenet": "data/imagenet", "imagenet100": "data/imagenet", "imagefolder": "data/imagefolder"}
# Datasets whose 1 % / 10 % label subsets are SimCLR's official lists (sempos.data.imagenet_subsets).
SUBSET_LISTS = ("imagenet", "imagenet100")


def is_encoded(name: str) -> bool:
    return name in ENCODED
