"""Tables for positives beyond augmentation: SePP-ID vs its host, sampler precision, the pair-set study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import pandas as pd

METRICS = ("knn top1", "linear top1")
STUDY_SETS = {"study_s": "S", "study_a": "A", "study_a2": "A2", "study_m": "M"}


def _source(entry: Mapping) -> str:
    return (entry.get("positives") or {}).get("source", "augment")


def host_of(methods: Mapping, name: str) -> str | None:
    """The augmented-pairs method a variant is compared with: its sampler run, else the first same-algo one."""
    entry = methods[name]
    frm = (entry.get("positives") or {}).get("from")
    if frm and methods[frm]["algo"] == entry["algo"]:
        return frm
    for other, e in methods.items():
        if e["algo"] == entry["algo"] and _source(e) == "augment":
            return other
    return None


def sepp_table(summary: pd.DataFrame, methods: Mapping) -> pd.DataFrame:
    rows = []
    for name, entry in methods.items():
        src = _source(entry)
        if src == "augment" or src in STUDY_SETS or name not in summary.index:
            continue
        host = host_of(methods, name)
        if host is None or host not in summary.index:
            continue
        pos = entry.get("positives") or {}
        row = {"variant": name, "host": host, "source": src, "mix": pos.get("mix", "add"),
               "form": pos.get("variant", "P"), "equal steps": bool(pos.get("equal_steps", False))}
        for m in METRICS:
            if m in summary.columns:
                row[f"{m} host"] = summary.loc[host, m]
                row[f"{m} variant"] = summary.loc[name, m]
                row[f"{m} delta"] = summary.loc[name, m] - summary.loc[host, m]
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant") if rows else pd.DataFrame()


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


def study_table(summary: pd.DataFrame, methods: Mapping) -> pd.DataFrame:
    """algo x pair set, and the relative gain (S - A) / A per metric."""
    rows = []
    for name, entry in methods.items():
        src = _source(entry)
        if src in STUDY_SETS and name in summary.index:
            aug = entry.get("augment") or {}
            # The augmentation-removal ablation: one row per (algo, augmentation override).
            pipeline = ", ".join(f"{k}={v}" for k, v in sorted(aug.items())) or "full pipeline"
            rows.append({"algo": entry["algo"], "augmentation": pipeline, "set": STUDY_SETS[src],
                         **{m: summary.loc[name, m] for m in METRICS if m in summary.columns}})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows).pivot_table(index=["algo", "augmentation"], columns="set",
                                        values=[m for m in METRICS if m in summary.columns])
    for m in METRICS:
        if (m, "S") in df.columns and (m, "A") in df.columns:
            df[(m, "gain (S-A)/A %")] = 100 * (df[(m, "S")] - df[(m, "A")]) / df[(m, "A")]
    df.columns = [f"{a} {b}" for a, b in df.columns]
    return df


NEIGHBOUR_ALGOS = ("mocov2", "nnclr", "snclr")
# pc-cp's small-scale reproduction (R18, CIFAR-10, 200 epochs): orientation only, a different dataset.
PUBLISHED_C10_LINEAR = {"mocov2": 89.56, "nnclr": 88.83, "snclr": 88.86}


def neighbour_table(summary: pd.DataFrame, methods: Mapping, last_history: Mapping[str, Mapping]) -> pd.DataFrame:
    """SNCLR vs NNCLR vs MoCo-v2 with neighbour purity / self-hit rate from the last training epoch."""
    rows = []
    for name, entry in methods.items():
        if entry["algo"] not in NEIGHBOUR_ALGOS or name not in summary.index or _source(entry) != "augment":
            continue
        h = last_history.get(name, {})
        row = {"method": name, "algo": entry["algo"]}
        row.update({m: summary.loc[name, m] for m in METRICS if m in summary.columns})
        row["neighbour purity %"] = 100 * h["purity"] if "purity" in h and h["purity"] == h["purity"] else float("nan")
        row["self-hit rate %"] = 100 * h["self_hit"] if "self_hit" in h and h["self_hit"] == h["self_hit"] else float("nan")
        row["published C10 linear (pc-cp)"] = PUBLISHED_C10_LINEAR.get(entry["algo"], float("nan"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method") if rows else pd.DataFrame()
