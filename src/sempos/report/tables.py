"""Collect every metrics.json into one frame; method x metric tables with statistics over seeds.

CSV files hold numbers only (mean, std, ci_low, ci_high, n, paired deltas); the 'mean ± std [CI]' strings
are for Markdown and LaTeX (report/stats.py defines every statistic).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from . import stats


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def collect(metrics: Mapping[str, Iterable[str | Path]]) -> pd.DataFrame:
    """One row per (method, seed) with one column per metric, read from exactly the given files.

    `metrics` maps a stage name (knn, linear, transfer, semisup, detect) to its metrics.json files: the
    report stage passes its inputs from the stage table, so files of earlier runs that the current DAG
    does not produce (another seed, a transfer target no longer asked for) are never read.
    """
    rows: dict[tuple[str, int], dict] = {}

    def put(m, key, value):
        rows.setdefault((m["method"], int(m["seed"])), {})[key] = value

    for p in map(Path, metrics.get("knn", ())):
        m = _read(p)
        put(m, "knn top1", m["top1"])
    for p in map(Path, metrics.get("linear", ())):
        m = _read(p)
        put(m, "linear top1", m["top1"])
        put(m, "linear top5", m["top5"])
    for p in map(Path, metrics.get("transfer", ())):
        m = _read(p)
        if "top1" in m:  # multi-label targets (VOC07) report mAP only: report/transfer_table.py shows them
            put(m, f"transfer {m['target']} top1", m["top1"])
    for p in map(Path, metrics.get("semisup", ())):
        m = _read(p)
        frac = f"{m['fraction']:g}"
        put(m, f"semisup {frac}% top1", m["top1"])
        put(m, f"semisup {frac}% top5", m["top5"])
    for p in map(Path, metrics.get("detect", ())):
        m = _read(p)
        meta = {"method": p.parent.parent.name, "seed": int(p.parent.name.removeprefix("seed"))}
        for k in ("AP", "AP50", "AP75"):
            put(meta, f"det {k}", m["mean"][k])
    df = pd.DataFrame.from_dict(rows, orient="index")
    if df.empty:
        return df
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "seed"])
    return df.sort_index()


STAT_SUFFIXES = (" std", " ci_low", " ci_high", " n", " delta", " delta std", " delta ci_low", " delta ci_high",
                 " delta n", " delta ci contains 0")


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of a per-seed or summary frame (not the statistics or bookkeeping columns)."""
    return [c for c in df.columns if not c.endswith(STAT_SUFFIXES) and c not in ("seeds", "steps", "pairs seen")]


def by_seed(per_seed: pd.DataFrame, method: str, metric: str) -> dict[int, float]:
    """{seed: value} of one method and metric (NaN where it was not evaluated)."""
    if method not in per_seed.index.get_level_values("method") or metric not in per_seed.columns:
        return {}
    col = per_seed.xs(method, level="method")[metric]
    return {int(seed): float(v) for seed, v in col.items()}


def estimates(per_seed: pd.DataFrame, method: str, metric: str) -> stats.Estimate:
    return stats.estimate(by_seed(per_seed, method, metric).values())


def summarize(per_seed: pd.DataFrame, order: list[str], baseline: str | None,
              budget: pd.DataFrame | None = None) -> pd.DataFrame:
    """Numbers only, one row per method: for each metric its mean (column '<metric>'), '<metric> std',
    '<metric> ci_low', '<metric> ci_high' (Student t 95 % over seeds; NaN with one seed) and '<metric> n';
    with a baseline the paired per-seed difference to it ('<metric> delta', '... delta std', '... delta ci_low',
    '... delta ci_high', '... delta n', '... delta ci contains 0'); 'seeds'; and 'steps' / 'pairs seen'
    (optimiser steps, mean over seeds) when a budget frame is given."""
    methods = [m for m in order if m in per_seed.index.get_level_values("method")]
    rows = {}
    for m in methods:
        row: dict = {}
        for c in metric_columns(per_seed):
            e = estimates(per_seed, m, c)
            row.update({c: e.mean, f"{c} std": e.std, f"{c} ci_low": e.ci_low, f"{c} ci_high": e.ci_high,
                        f"{c} n": e.n})
            if baseline and baseline in methods:
                d = stats.paired(by_seed(per_seed, m, c), by_seed(per_seed, baseline, c))
                row.update({f"{c} delta": d.mean, f"{c} delta std": d.std, f"{c} delta ci_low": d.ci_low,
                            f"{c} delta ci_high": d.ci_high, f"{c} delta n": d.n,
                            f"{c} delta ci contains 0": d.ci_contains_zero})
        row["seeds"] = int(len(per_seed.xs(m, level="method")))
        if budget is not None and len(budget) and m in budget.index.get_level_values("method"):
            b = budget.xs(m, level="method")
            row["steps"] = float(b["optimizer_steps"].mean())
            row["pairs seen"] = float(b["pairs_seen"].mean())
        rows[m] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "method"
    return out


def tidy(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as one numeric row per (method, metric): n, mean, std, ci_low, ci_high, delta... (the CSV)."""
    rows = []
    for m in summary.index:
        for c in metric_columns(summary):
            if pd.isna(summary.loc[m, c]):
                continue
            row = {"method": m, "metric": c, "n": summary.loc[m, f"{c} n"], "mean": summary.loc[m, c],
                   "std": summary.loc[m, f"{c} std"], "ci_low": summary.loc[m, f"{c} ci_low"],
                   "ci_high": summary.loc[m, f"{c} ci_high"]}
            for k in ("delta", "delta std", "delta ci_low", "delta ci_high", "delta n", "delta ci contains 0"):
                if f"{c} {k}" in summary.columns:
                    row[k.replace(" ", "_")] = summary.loc[m, f"{c} {k}"]
            for k in ("steps", "pairs seen"):
                if k in summary.columns:
                    row[k.replace(" ", "_")] = summary.loc[m, k]
            rows.append(row)
    return pd.DataFrame(rows)


def _steps_text(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:,.0f}"


def pretty(summary: pd.DataFrame) -> pd.DataFrame:
    """'mean ± std [95 % CI]' strings for Markdown/LaTeX ('n=1, no CI' with one seed; '–' where not run)."""
    out = pd.DataFrame(index=summary.index)
    out["seeds"] = summary["seeds"]
    if "steps" in summary.columns:
        out["steps"] = [_steps_text(v) for v in summary["steps"]]
    for c in metric_columns(summary):
        out[c] = [stats.fmt_estimate(_row_estimate(summary, m, c)) for m in summary.index]
    return out


def _row_estimate(summary: pd.DataFrame, method: str, metric: str) -> stats.Estimate:
    n = summary.loc[method, f"{metric} n"]
    if pd.isna(n) or n == 0 or pd.isna(summary.loc[method, metric]):
        return stats.EMPTY
    return stats.Estimate(int(n), summary.loc[method, metric], summary.loc[method, f"{metric} std"],
                          summary.loc[method, f"{metric} ci_low"], summary.loc[method, f"{metric} ci_high"])


def read_budgets(files: Mapping[tuple[str, int], Path]) -> pd.DataFrame:
    """{(method, seed): positives.json} -> one row per run: epochs, pairs per epoch, batch, optimiser steps,
    pairs seen and the online kNN monitor's bank/query sizes (what the trainer recorded)."""
    keys = ("epochs", "pairs_per_epoch", "batch_size", "optimizer_steps", "pairs_seen", "monitor_bank",
            "monitor_queries")
    rows = {}
    for (method, seed), path in files.items():
        path = Path(path)
        d = json.loads(path.read_text()) if path.exists() else {}
        rows[(method, int(seed))] = {k: d.get(k, math.nan) for k in keys} | {"source": d.get("source", "augment")}
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "seed"])
    return df.sort_index()


def budget_table(budget: pd.DataFrame, methods: Mapping, order: list[str]) -> pd.DataFrame:
    """Per method: the positives it trains on, epochs, pairs per epoch, optimiser steps, pairs seen (mean over
    seeds; mined pair counts can differ by seed) and the steps relative to its algo's plain host."""
    if not len(budget):
        return pd.DataFrame()
    rows = {}
    for m in order:
        if m not in budget.index.get_level_values("method"):
            continue
        b = budget.xs(m, level="method")
        pos = methods[m].get("positives") or {}
        what = pos.get("source", "augment")
        if pos.get("match_steps"):
            what = f"augment, steps of {pos['match_steps']}"
        elif what != "augment":
            what += f", {pos.get('mix', 'add')}" + (", equal steps" if pos.get("equal_steps") else "")
            if pos.get("k") and what.startswith(("mined", "study_m")):
                what += f", K={pos['k']}"
        rows[m] = {"algo": methods[m]["algo"], "positives": what, "seeds": len(b),
                   "epochs": _first(b["epochs"]), "pairs/epoch": float(b["pairs_per_epoch"].mean()),
                   "batch": _first(b["batch_size"]), "optimiser steps": float(b["optimizer_steps"].mean()),
                   "pairs seen": float(b["pairs_seen"].mean())}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "method"
    return out


def _first(col: pd.Series):
    vals = col.dropna().unique()
    return vals[0] if len(vals) == 1 else (math.nan if not len(vals) else f"{min(vals)}–{max(vals)}")


def curve(frames: Mapping[int, pd.DataFrame], column: str) -> pd.DataFrame:
    """Per epoch over seeds: steps (mean), n, mean, ci_low, ci_high of a history column."""
    rows = []
    if not frames:
        return pd.DataFrame(columns=["epoch", "steps", "n", "mean", "ci_low", "ci_high"])
    joined = pd.concat([f.assign(seed=s) for s, f in frames.items()])
    for epoch, g in joined.groupby("epoch"):
        e = stats.estimate(g[column]) if column in g else stats.EMPTY
        steps = float(g["steps"].mean()) if "steps" in g and g["steps"].notna().any() else math.nan
        rows.append({"epoch": int(epoch), "steps": steps, "n": e.n, "mean": e.mean, "ci_low": e.ci_low,
                     "ci_high": e.ci_high})
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """df as a markdown table: a (method, seed) index as separate columns, not a tuple per row; '–' for NaN."""
    flat = isinstance(df.index, pd.MultiIndex)
    shown = df.reset_index() if flat else df
    shown = shown.astype(object).where(shown.notna(), None)  # tabulate's missingval applies to None, not NaN
    return shown.to_markdown(index=not flat, missingval="–")


def write_table(df: pd.DataFrame, stem: Path, caption: str, csv: pd.DataFrame | None = None) -> list[Path]:
    """stem.md and stem.tex show `df`; stem.csv holds `csv` (numbers only) when given, else `df`."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    from ..io import save_text

    paths = [stem.with_suffix(".md"), stem.with_suffix(".csv"), stem.with_suffix(".tex")]
    save_text(f"<!-- {caption} -->\n" + markdown(df) + "\n", paths[0])
    save_text(df.to_csv() if csv is None else csv.to_csv(index=False), paths[1])
    save_text(df.to_latex(caption=caption, escape=True, na_rep="–"), paths[2])
    return paths
