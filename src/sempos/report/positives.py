"""Comparisons for positives beyond augmentation: every variant against its host and its compute-matched host,
the sampler's precision, the pair-set study and the neighbour methods.

A variant trained on D ∪ SPPS takes more optimiser steps than its host; its fair reference is the host trained
for the same number of steps (a `positives.match_steps` control, or the host itself when the variant runs at
equal steps). Differences are paired per seed with a Student-t CI (report/stats.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import pandas as pd

from . import stats
from .tables import by_seed

METRICS = ("knn top1", "linear top1")
STUDY_SETS = {"study_s": "S", "study_a": "A", "study_a2": "A2", "study_m": "M"}
# The pair-set study's differences (docs/science.md §3.2): semantic vs augmented pairs, vs the same 2N
# images (A2 separates image diversity from pairing), and mined pairs vs augmented (the false-neighbour effect).
STUDY_CONTRASTS = (("S", "A"), ("S", "A2"), ("M", "A"))


def comparison_metrics(per_seed: pd.DataFrame) -> tuple[str, ...]:
    """kNN and linear top-1, plus every transfer top-1 that ran (the pair-set study's claim is transfer)."""
    return tuple(c for c in per_seed.columns if c in METRICS or (c.startswith("transfer ") and c.endswith(" top1")))


def _pos(entry: Mapping) -> dict:
    return entry.get("positives") or {}


def _source(entry: Mapping) -> str:
    return _pos(entry).get("source", "augment")


def is_control(entry: Mapping) -> bool:
    """A compute-matched host: augmented pairs only, sized to another method's steps."""
    return _pos(entry).get("match_steps") is not None


def is_variant(entry: Mapping) -> bool:
    return _source(entry) not in ("augment",) + tuple(STUDY_SETS)


def host_of(methods: Mapping, name: str) -> str | None:
    """The plain augmented-pairs method a variant is compared with: its sampler run, else the first same-algo one."""
    entry = methods[name]
    frm = _pos(entry).get("from")
    if frm and frm in methods and methods[frm]["algo"] == entry["algo"]:
        return frm
    for other, e in methods.items():
        if e["algo"] == entry["algo"] and _source(e) == "augment" and not is_control(e):
            return other
    return None


def steps_by_seed(budget: pd.DataFrame, method: str) -> dict[int, float]:
    if not len(budget) or method not in budget.index.get_level_values("method"):
        return {}
    col = budget.xs(method, level="method")["optimizer_steps"]
    return {int(s): float(v) for s, v in col.items() if pd.notna(v)}


def _same_steps(budget: pd.DataFrame, a: str, b: str) -> bool:
    sa, sb = steps_by_seed(budget, a), steps_by_seed(budget, b)
    common = set(sa) & set(sb)
    return bool(common) and all(sa[s] == sb[s] for s in common)


def comparison_pairs(methods: Mapping, budget: pd.DataFrame) -> list[dict]:
    """(variant, reference, relation) for every variant: its host, and the compute-matched host (same steps).

    relation: 'host' (fewer steps than the variant), 'host, same steps' (the variant runs at equal steps),
    'compute-matched host', or 'compute-matched host' with reference None when no such run exists.
    The pair-set study adds (S, A), (S, A2), (M, A) within each algo and augmentation pipeline.
    """
    out = []
    for name, entry in methods.items():
        if not is_variant(entry):
            continue
        host = host_of(methods, name)
        declared = [c for c, e in methods.items() if _pos(e).get("match_steps") == name]
        same = [c for c, e in methods.items() if is_control(e) and e["algo"] == entry["algo"]
                and _same_steps(budget, name, c)]
        if host is not None and _same_steps(budget, name, host):
            out.append({"variant": name, "reference": host, "relation": "host, same steps"})
            continue
        if host is not None:
            out.append({"variant": name, "reference": host, "relation": "host"})
        matched = (declared + same)[:1]
        out.append({"variant": name, "reference": matched[0] if matched else None, "relation": "compute-matched host"})
    for (algo, aug), sets in _study_groups(methods).items():
        for a, b in STUDY_CONTRASTS:
            if a in sets and b in sets:
                out.append({"variant": sets[a], "reference": sets[b], "relation": f"pair set {a} vs {b}"})
    return out


def compare(per_seed: pd.DataFrame, pairs: list[dict], budget: pd.DataFrame,
            metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Numbers only: one row per (variant, reference, metric) with the paired per-seed difference."""
    metrics = comparison_metrics(per_seed) if metrics is None else metrics
    rows = []
    for p in pairs:
        v, r = p["variant"], p["reference"]
        vs = steps_by_seed(budget, v)
        rs = steps_by_seed(budget, r) if r else {}
        for m in metrics:
            if m not in per_seed.columns:
                continue
            d = stats.paired(by_seed(per_seed, v, m), by_seed(per_seed, r, m)) if r else stats.EMPTY
            rows.append({"variant": v, "relation": p["relation"], "reference": r, "metric": m, "n": d.n,
                         "delta": d.mean, "delta_std": d.std, "delta_ci_low": d.ci_low, "delta_ci_high": d.ci_high,
                         "ci_contains_0": d.ci_contains_zero,
                         "variant_steps": _mean(vs.values()), "reference_steps": _mean(rs.values())})
    return pd.DataFrame(rows)


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def comparison_table(comp: pd.DataFrame) -> pd.DataFrame:
    """The Markdown view: one row per (variant, relation, reference), paired Δ [95 % CI] per metric."""
    if not len(comp):
        return pd.DataFrame()
    rows = []
    for (v, rel, ref), g in comp.groupby(["variant", "relation", "reference"], sort=False, dropna=False):
        row = {"variant": v, "vs": rel, "reference": ref if isinstance(ref, str) else "none: add a positives.match_steps control",
               "variant steps": _steps(g["variant_steps"].iloc[0]), "reference steps": _steps(g["reference_steps"].iloc[0])}
        for _, r in g.iterrows():
            e = stats.Estimate(int(r["n"]), r["delta"], r["delta_std"], r["delta_ci_low"], r["delta_ci_high"])
            row[f"Δ {r['metric']}"] = stats.fmt_delta(e)
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def _steps(v) -> str:
    return "–" if pd.isna(v) else f"{v:,.0f}"


def sampler_table(pair_diag_files: list[Path]) -> pd.DataFrame:
    """Pair precision and neighbour precision at k for every mined method and seed."""
    rows = []
    for f in pair_diag_files:
        d = json.loads(Path(f).read_text())
        row = {"method": d["method"], "sampler run": d["from"], "seed": d["seed"], "k": d["config"]["k"],
               "pairs": d["num_pairs"], "pair precision": d["pair_precision"]}
        at_k = sorted(d["neighbour_precision_at_k"].items(), key=lambda kv: int(kv[0]))
        row.update({f"prec@{k}": v for k, v in at_k if int(k) in (1, 2, 5, 10, 20, 50)})
        # How many candidate pairs each filter removed: a filter that eats most pairs is visible here.
        row.update({f"removed by {f}": n for f, n in sorted(d.get("removed_by", {}).items())})
        rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "seed"]) if rows else pd.DataFrame()


def _augmentation(entry: Mapping) -> str:
    aug = entry.get("augment") or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(aug.items())) or "full pipeline"


def _study_groups(methods: Mapping) -> dict[tuple[str, str], dict[str, str]]:
    """{(algo, augmentation): {set: method}} for the pair-set study's methods."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for name, entry in methods.items():
        src = _source(entry)
        if src in STUDY_SETS:
            groups.setdefault((entry["algo"], _augmentation(entry)), {})[STUDY_SETS[src]] = name
    return groups


def study_table(per_seed: pd.DataFrame, methods: Mapping, budget: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pair-set study: (numeric long table, Markdown view).

    Markdown: one row per (algo, augmentation, metric) with each set's mean ± std [CI], the paired S − A
    difference with its CI, the relative gain (S − A) / A in % of the means, and the steps every set took.
    """
    long_rows, view = [], []
    for (algo, aug), sets in _study_groups(methods).items():
        for m in comparison_metrics(per_seed):
            row = {"algo": algo, "augmentation": aug, "metric": m}
            est = {}
            for s in ("S", "A", "A2", "M"):
                if s in sets:
                    e = stats.estimate(by_seed(per_seed, sets[s], m).values())
                    est[s] = e
                    row[s] = stats.fmt_estimate(e)
                    long_rows.append({"algo": algo, "augmentation": aug, "set": s, "method": sets[s], "metric": m,
                                      **e.as_dict(), "steps": _mean(steps_by_seed(budget, sets[s]).values())})
            if "S" in sets and "A" in sets:
                d = stats.paired(by_seed(per_seed, sets["S"], m), by_seed(per_seed, sets["A"], m))
                row["S − A"] = stats.fmt_delta(d)
                row["gain (S−A)/A %"] = round(100 * (est["S"].mean - est["A"].mean) / est["A"].mean, 2)
            steps = {_mean(steps_by_seed(budget, n).values()) for n in sets.values()}
            row["steps"] = " / ".join(_steps(x) for x in sorted(steps))
            view.append(row)
    if not view:
        return pd.DataFrame(), pd.DataFrame()
    return pd.DataFrame(long_rows), pd.DataFrame(view).set_index(["algo", "augmentation", "metric"])


NEIGHBOUR_ALGOS = ("mocov2", "nnclr", "snclr")
# pc-cp's small-scale reproduction (R18, CIFAR-10, 200 epochs): orientation only, a different dataset.
PUBLISHED_C10_LINEAR = {"mocov2": 89.56, "nnclr": 88.83, "snclr": 88.86}


def neighbour_table(per_seed: pd.DataFrame, methods: Mapping, last_history: Mapping[str, Mapping],
                    budget: pd.DataFrame) -> pd.DataFrame:
    """SNCLR vs NNCLR vs MoCo-v2 with neighbour purity / self-hit rate from the last training epoch."""
    rows = []
    for name, entry in methods.items():
        if entry["algo"] not in NEIGHBOUR_ALGOS or _source(entry) != "augment" or is_control(entry):
            continue
        if name not in per_seed.index.get_level_values("method"):
            continue
        h = last_history.get(name, {})
        row = {"method": name, "algo": entry["algo"], "steps": _steps(_mean(steps_by_seed(budget, name).values()))}
        row.update({m: stats.fmt_estimate(stats.estimate(by_seed(per_seed, name, m).values()))
                    for m in METRICS if m in per_seed.columns})
        row["neighbour purity %"] = 100 * h["purity"] if "purity" in h and h["purity"] == h["purity"] else float("nan")
        row["self-hit rate %"] = 100 * h["self_hit"] if "self_hit" in h and h["self_hit"] == h["self_hit"] else float("nan")
        row["published C10 linear (pc-cp)"] = PUBLISHED_C10_LINEAR.get(entry["algo"], float("nan"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()
