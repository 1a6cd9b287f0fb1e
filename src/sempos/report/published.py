"""Published numbers, each with its citation. Shown in their own tables, never mixed with ours."""

from __future__ import annotations

import pandas as pd

PC_CP = ("pc-cp/Benchmark-Methods-For-MNN README (third-party re-implementation; R18, 200 ep, bs 256, K=5, "
         "200-NN kNN)")

# method: (C10 kNN, C10 linear, C100 kNN, C100 linear, TinyIN kNN, TinyIN linear)
SMALL_SCALE = {
    "MoCo-v2": (87.82, 89.56, 57.29, 62.47, 37.77, 46.38),
    "SimCLR": (85.30, 87.72, 56.50, 62.52, 37.16, 45.71),
    "BYOL": (87.54, 89.54, 57.24, 63.16, 37.65, 45.29),
    "NNCLR K=1": (85.19, 87.72, 50.54, 59.62, 30.93, 41.52),
    "NNCLR K=5": (86.98, 88.83, 53.40, 62.54, 34.99, 44.42),
    "MSF K=5": (88.24, 89.94, 52.32, 59.94, 35.29, 42.68),
    "SNCLR K=5": (87.36, 88.86, 58.65, 65.19, 41.92, 50.15),
    "SCE": (88.54, 89.71, 59.97, 64.85, 40.48, 48.50),
}
SMALL_SCALE_COLUMNS = ("C10 kNN", "C10 linear", "C100 kNN", "C100 linear", "TinyIN kNN", "TinyIN linear")

# Headline claims from the abstracts (docs/science.md §1.1): ImageNet linear top-1 gains, 800 epochs.
HEADLINES = [
    {"paper": "SePP-ID v1 (arXiv 2306.16122v1)", "host": "SimCLR", "batch": 1024, "epochs": 800,
     "metric": "ImageNet linear top-1 gain", "value": 4.18},
    {"paper": "SePP-ID (TMLR 2024)", "host": "MoCo-v2", "batch": 256, "epochs": 800,
     "metric": "ImageNet linear top-1 gain", "value": 4.1},
]


def small_scale_table() -> pd.DataFrame:
    df = pd.DataFrame.from_dict(SMALL_SCALE, orient="index", columns=list(SMALL_SCALE_COLUMNS))
    df.index.name = "method (published)"
    return df
