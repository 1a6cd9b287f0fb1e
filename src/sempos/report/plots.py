"""Matplotlib figures for the report (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_bars(summary: pd.DataFrame, metrics: list[str], path: Path, title: str) -> Path:
    metrics = [m for m in metrics if m in summary.columns]
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(summary), 3.6))
    width = 0.8 / max(1, len(metrics))
    for i, m in enumerate(metrics):
        xs = [j + i * width for j in range(len(summary))]
        ax.bar(xs, summary[m], width, yerr=summary[m + " std"].fillna(0), label=m, capsize=2)
    ax.set_xticks([j + width * (len(metrics) - 1) / 2 for j in range(len(summary))])
    ax.set_xticklabels(summary.index, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def curves(histories: dict[str, pd.DataFrame], column: str, path: Path, title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, h in histories.items():
        if len(h) and h[column].notna().any():
            ax.plot(h["epoch"], h[column], marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
