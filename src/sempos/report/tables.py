"""Collect every metrics.json into one frame and format method x metric tables (mean ± std over seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def collect(results: Path, ds: str) -> pd.DataFrame:
    """One row per (method, seed) with one column per metric."""
    rows: dict[tuple[str, int], dict] = {}

    def put(m, key, value):
        rows.setdefault((m["method"], int(m["seed"])), {})[key] = value

    for p in sorted((results / "knn" / ds).glob("*/seed*/metrics.json")):
        m = _read(p)
        put(m, "knn top1", m["top1"])
    for p in sorted((results / "linear" / ds).glob("*/seed*/metrics.json")):
        m = _read(p)
        put(m, "linear top1", m["top1"])
        put(m, "linear top5", m["top5"])
    for p in sorted(results.glob(f"transfer/*/{ds}/*/seed*/metrics.json")):
        m = _read(p)
        if "top1" in m:  # multi-label targets (VOC07) report mAP only: report/transfer_table.py shows them
            put(m, f"transfer {m['target']} top1", m["top1"])
    for p in sorted((results / "semisup" / ds).glob("*/seed*/frac*/metrics.json")):
        m = _read(p)
        frac = f"{m['fraction']:g}"
        put(m, f"semisup {frac}% top1", m["top1"])
        put(m, f"semisup {frac}% top5", m["top5"])
    for p in sorted((results / "detect" / ds).glob("*/seed*/metrics.json")):
        m = _read(p)
        meta = {"method": p.parent.parent.name, "seed": int(p.parent.name.removeprefix("seed"))}
        for k in ("AP", "AP50", "AP75"):
            put(meta, f"det {k}", m["mean"][k])
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "seed"])
    return df.sort_index()


def summarize(per_seed: pd.DataFrame, order: list[str], baseline: str | None) -> pd.DataFrame:
    """mean and std per method (std over seeds; NaN with one seed), plus deltas to the baseline."""
    g = per_seed.groupby(level="method")
    mean, std, n = g.mean(), g.std(), g.size()
    out = pd.DataFrame(index=[m for m in order if m in mean.index])
    for col in mean.columns:
        out[col] = mean[col]
        out[col + " std"] = std[col]
        if baseline and baseline in mean.index:
            out[col + " delta"] = mean[col] - mean.loc[baseline, col]
    out["seeds"] = n
    out.index.name = "method"
    return out


def pretty(summary: pd.DataFrame) -> pd.DataFrame:
    """'mean ± std (Δ)' strings for markdown/LaTeX; '–' where a method has no value for a metric."""
    metrics = [c for c in summary.columns if not c.endswith((" std", " delta")) and c != "seeds"]
    out = pd.DataFrame(index=summary.index)
    for c in metrics:
        cells = []
        for m in summary.index:
            if pd.isna(summary.loc[m, c]):
                cells.append("–")  # not evaluated for this method (e.g. detection runs on a subset)
                continue
            s = f"{summary.loc[m, c]:.2f}"
            sd = summary.loc[m, c + " std"]
            if pd.notna(sd):
                s += f" ± {sd:.2f}"
            d = summary.loc[m, c + " delta"] if c + " delta" in summary else float("nan")
            if pd.notna(d) and d != 0:
                s += f" ({d:+.2f})"
            cells.append(s)
        out[c] = cells
    out["seeds"] = summary["seeds"]
    return out


def markdown(df: pd.DataFrame) -> str:
    """df as a markdown table: a (method, seed) index as separate columns, not a tuple per row; '–' for NaN."""
    flat = isinstance(df.index, pd.MultiIndex)
    shown = df.reset_index() if flat else df
    shown = shown.astype(object).where(shown.notna(), None)  # tabulate's missingval applies to None, not NaN
    return shown.to_markdown(index=not flat, missingval="–")


def write_table(df: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    from ..io import save_text

    paths = [stem.with_suffix(".md"), stem.with_suffix(".csv"), stem.with_suffix(".tex")]
    save_text(f"<!-- {caption} -->\n" + markdown(df) + "\n", paths[0])
    save_text(df.to_csv(), paths[1])
    save_text(df.to_latex(caption=caption, escape=True, na_rep="–"), paths[2])
    return paths
