"""Matplotlib figures for the report (Agg backend: no display needed).

Accuracies are drawn as points on an axis zoomed to the values (a 0-100 bar would hide one-point effects),
with 95 % CI whiskers only where a method has several seeds; one-seed points are hollow and say n=1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from . import stats  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def zoom(values: Sequence[float], pad: float = 0.15, min_span: float = 1.0) -> tuple[float, float]:
    """y-limits around the finite values (means and CI bounds), padded, at least min_span wide."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return 0.0, 1.0
    lo, hi = min(xs), max(xs)
    span = max(hi - lo, min_span)
    mid = (lo + hi) / 2
    return mid - span * (0.5 + pad), mid + span * (0.5 + pad)


def _point(ax, x, e: stats.Estimate, color, label=None):
    if e.n == 0 or math.isnan(e.mean):
        return
    if e.has_ci:
        ax.errorbar([x], [e.mean], yerr=[[e.mean - e.ci_low], [e.ci_high - e.mean]], fmt="o", color=color,
                    capsize=3, ms=5, label=label)
    else:
        ax.plot([x], [e.mean], "o", mfc="white", color=color, ms=5, label=label)


def estimates_plot(est: Mapping[str, Mapping[str, stats.Estimate]], path: Path, title: str,
                   ylabel: str = "accuracy (%)") -> Path:
    """One panel per metric; est[metric][method] -> Estimate. Each panel has its own zoomed y-axis."""
    metrics = [m for m in est if any(e.n for e in est[m].values())]
    methods = list(dict.fromkeys(k for m in metrics for k in est[m]))
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(max(4.0, 0.45 * len(methods) + 1.5) * max(1, len(metrics)) / 1.4, 3.8),
                             squeeze=False, layout="constrained")
    for ax, m in zip(axes[0], metrics):
        vals = []
        for i, name in enumerate(methods):
            e = est[m].get(name, stats.EMPTY)
            _point(ax, i, e, "C0")
            vals += [e.mean, e.ci_low, e.ci_high]
        ax.set_ylim(*zoom(vals))
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=8)
        ax.set_title(m, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title + "\nmean over seeds; whiskers: 95 % t CI (n > 1); hollow: one seed, no CI", fontsize=9)
    return _save(fig, path)


def deltas_plot(comp: pd.DataFrame, path: Path, title: str) -> Path:
    """Paired per-seed differences (variant − reference) with CI whiskers, one panel per metric, zero line."""
    comp = comp[comp["reference"].notna()] if len(comp) else comp
    metrics = list(dict.fromkeys(comp["metric"])) if len(comp) else []
    labels = list(dict.fromkeys(f"{r.variant} − {r.reference}" for r in comp.itertuples())) if len(comp) else []
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4.6 * max(1, len(metrics)), 0.32 * len(labels) + 1.6),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, m in zip(axes[0], metrics):
        g = comp[comp["metric"] == m]
        vals = [0.0]
        for r in g.itertuples():
            y = labels.index(f"{r.variant} − {r.reference}")
            e = stats.Estimate(int(r.n), r.delta, r.delta_std, r.delta_ci_low, r.delta_ci_high)
            color = "C7" if e.ci_contains_zero in (True, None) else ("C2" if e.mean > 0 else "C3")
            if e.has_ci:
                ax.errorbar([e.mean], [y], xerr=[[e.mean - e.ci_low], [e.ci_high - e.mean]], fmt="o", color=color,
                            capsize=3, ms=4)
            elif e.n:
                ax.plot([e.mean], [y], "o", mfc="white", color=color, ms=4)
            vals += [e.mean, e.ci_low, e.ci_high]
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlim(*zoom(vals, pad=0.1))
        ax.set_title(f"Δ {m} (points)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    ax0 = axes[0][0]
    ax0.set_yticks(range(len(labels)))
    ax0.set_yticklabels(labels, fontsize=7)
    ax0.invert_yaxis()
    fig.suptitle(title + "\npaired per-seed Δ, 95 % t CI; grey: CI contains 0 or one seed (hollow)", fontsize=9)
    return _save(fig, path)


def curves(curves_by_method: Mapping[str, pd.DataFrame], path: Path, title: str, ylabel: str,
           x: str = "steps", xlabel: str = "optimiser steps") -> Path:
    """Mean curves over seeds (from tables.curve) against optimiser steps; a 95 % CI band where n > 1."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    vals = []
    palette = plt.cm.tab20.colors if len(curves_by_method) > 10 else [f"C{i}" for i in range(10)]
    for i, (name, c) in enumerate(curves_by_method.items()):
        if not len(c) or c["mean"].isna().all():
            continue
        color = palette[i % len(palette)]
        ax.plot(c[x], c["mean"], marker="o", ms=3, color=color, label=f"{name} (n={int(c['n'].max())})")
        band = c[c["n"] > 1]
        if len(band):
            ax.fill_between(band[x], band["ci_low"], band["ci_high"], color=color, alpha=0.15, lw=0)
        vals += list(c["mean"]) + list(band["ci_low"]) + list(band["ci_high"])
    # Epoch 0 is the random initialisation: keep it in view but zoom on the trained part when it dominates.
    ax.set_ylim(*zoom(vals, pad=0.08))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
