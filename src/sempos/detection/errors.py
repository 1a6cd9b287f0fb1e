"""Detection errors; each message names the fix (stages print them without a traceback)."""

from __future__ import annotations

from ..errors import SemposError


class DetectionError(SemposError):
    """A detection setting or input that cannot work (bad backbone, impossible scene layout, ...)."""


class ConversionError(DetectionError):
    """A backbone state dict key that has no Detectron2 name."""


class Detectron2Unavailable(DetectionError):
    """detection.backend is detectron2 but the package cannot be imported."""

    def __init__(self, cause: BaseException | None = None) -> None:
        why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(
            "detection.backend is 'detectron2' but detectron2 cannot be imported" + why + ". Fix: install it "
            "from source into this venv (it is not on PyPI for this Python): `git clone "
            "https://github.com/facebookresearch/detectron2 && .venv/bin/python -m pip install "
            "--no-build-isolation -e detectron2` (CPU-only builds take ~100 s), or set "
            "`detection.backend: torchvision` to use the built-in Faster R-CNN R50-C4."
        )
