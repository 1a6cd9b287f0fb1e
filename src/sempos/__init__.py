"""sempos: positives beyond augmentation, as one reproducible pipeline."""

__version__ = "0.1.0"
