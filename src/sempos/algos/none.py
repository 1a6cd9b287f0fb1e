"""The random-initialisation baseline: no training; the backbone is evaluated as initialised."""

from __future__ import annotations

from .base import Algorithm


class RandomInit(Algorithm):
    name = "none"
    HPARAMS = {}
    trains = False
