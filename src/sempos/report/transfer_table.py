"""The transfer table in the papers' layout (SimCLR Table 8, BYOL Table 3): methods as rows, datasets as columns.

Each cell is the dataset's own metric (top-1; mean per-class accuracy for Aircraft, Pets, Caltech-101 and
Flowers-102; 11-point mAP for VOC2007), as mean over pretraining seeds, with a 95 % Student-t confidence
interval when there are several seeds (mean ± half-width) and the seed count otherwise implicit (one seed:
the number alone). One table for the linear protocol and, when it ran, one for fine-tuning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from ..data.catalog import metric_of
from . import stats

# The papers' column order (SimCLR/BYOL: Food, CIFAR10, CIFAR100, Birdsnap, SUN397, Cars, Aircraft, VOC2007, DTD,
# Pets, Caltech-101, Flowers), then the datasets they do not have.
PAPER_ORDER = ("food101", "cifar10", "cifar100", "cars", "aircraft", "voc2007", "dtd", "pets", "caltech101",
               "flowers102", "stl10", "fmnist", "fmnist_heldout", "digits")
METRIC_LABEL = {"top1": "top-1", "mean_per_class": "mean per-class", "voc07_map": "11-pt mAP"}


def collect(files: Iterable[str | Path]) -> pd.DataFrame:
    """One row per (method, seed, target): the target metric's test score, read from exactly `files` (the
    report stage's inputs), never a glob, so metrics of targets the DAG no longer asks for are not shown."""
    rows = []
    for p in map(Path, files):
        m = json.loads(p.read_text())
        # Older metrics files (top-1 only) have no `score`: their metric was top-1.
        rows.append({"method": m["method"], "seed": int(m["seed"]), "target": m["target"],
                     "metric": m.get("metric", "top1"), "score": float(m.get("score", m.get("top1")))})
    return pd.DataFrame(rows, columns=["method", "seed", "target", "metric", "score"])


def _order(targets) -> list[str]:
    known = [t for t in PAPER_ORDER if t in set(targets)]
    return known + sorted(set(targets) - set(known))


def table(per_run: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """methods x datasets of 'mean ± CI' strings ('–' where a method has no value); column names carry the metric."""
    targets = _order(per_run["target"].unique()) if len(per_run) else []
    rows = [m for m in methods if m in set(per_run["method"])]
    out = pd.DataFrame(index=pd.Index(rows, name="method"))
    for t in targets:
        cells = []
        for m in rows:
            vals = per_run.loc[(per_run["method"] == m) & (per_run["target"] == t), "score"].tolist()
            if not vals:
                cells.append("–")
                continue
            e = stats.estimate(vals)
            cells.append(f"{e.mean:.2f} ± {e.half_width:.2f}" if e.has_ci else f"{e.mean:.2f}")
        out[f"{t} ({METRIC_LABEL[metric_of(t)]})"] = cells
    if rows:
        out["seeds"] = [int(per_run.loc[per_run["method"] == m, "seed"].nunique()) for m in rows]
    return out


def section(files: Mapping[str, Iterable[str | Path]], ds: str, methods: Sequence[str], table_dir: Path,
            write_table) -> list[str]:
    """Write tables/transfer*.{md,csv,tex} and return the report's markdown lines (nothing when nothing ran).

    write_table(df, stem, caption) and the markdown renderer come from report.tables (passed in, so this module
    does not depend on that file's internals). `files`: protocol (linear, finetune) -> its metrics files."""
    lines: list[str] = []
    for protocol, stem, title in (("linear", "transfer", "linear transfer (frozen features, L2 logistic regression)"),
                                  ("finetune", "transfer_finetune", "fine-tuned transfer (whole network)")):
        per_run = collect(files.get(protocol, ()))
        if not len(per_run):
            continue
        df = table(per_run, methods)
        n = int(per_run.groupby("method")["seed"].nunique().max())
        ci = "mean ± 95 % Student-t CI over seeds" if n > 1 else "one seed"
        caption = f"transfer from {ds}: {title}; each dataset's metric; {ci}"
        write_table(df, table_dir / stem, caption)
        lines += [f"## Transfer from {ds}: {title}", "",
                  f"Each column is the dataset's reported metric on its test split ({ci}); C chosen on the "
                  "dataset's validation split, refit on train + val (docs/science.md §4.4).", "",
                  df.to_markdown(), "", f"Table: [{stem}](tables/{stem}.md) ([csv](tables/{stem}.csv)).", ""]
    return lines
