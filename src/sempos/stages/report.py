"""Tables (md/csv/tex), plots, results/report.md and results/metrics.json from the outputs of the current DAG.

The report reads exactly its inputs in the stage table (`args.inputs`: every metrics file, history and pair
diagnostics the params ask for), never a glob of results/, so files left by earlier runs cannot leak in.
"""

from pathlib import Path

import pandas as pd

from ..io import save_json, save_text
from ..pipeline import runs
from ..report import plots, positives, published, tables
from .common import run_stage


def mean_history(files: list[str]) -> pd.DataFrame:
    frames = [pd.read_csv(f) for f in files]
    return pd.concat(frames).groupby("epoch", as_index=False).mean(numeric_only=True)


def metrics_summary(summary: pd.DataFrame) -> dict:
    """{method: {metric: mean over seeds}}: results/metrics.json, which `dvc exp show` / `dvc metrics diff` read."""
    cols = [c for c in summary.columns if not c.endswith((" std", " delta"))]
    out = {}
    for method, row in summary[cols].iterrows():
        out[method] = {c.replace(" ", "_").replace("%", "pct"): (None if pd.isna(v) else round(float(v), 4))
                       for c, v in row.items()}
    return out


def body(params, args):
    ds = params["data"]["pretrain"]
    methods = list(params["methods"])
    baseline = params["report"].get("baseline")
    per_seed = tables.collect(args.inputs)
    summary = tables.summarize(per_seed, methods, baseline)
    tdir = Path(args.outputs["tables"])
    tables.write_table(per_seed.round(3), tdir / "per_seed", f"{ds}: every metric per method and seed")
    tables.write_table(tables.pretty(summary), tdir / "main", f"{ds}: mean ± std over seeds (Δ to {baseline})")
    tables.write_table(published.small_scale_table(), tdir / "published_small_scale", published.PC_CP)
    pdir = Path(args.outputs["plots"])
    metric_cols = [c for c in ("knn top1", "linear top1") if c in summary.columns]
    plots.accuracy_bars(summary, metric_cols, pdir / "accuracy.png", f"{ds}: last-epoch accuracy")
    transfer_cols = [c for c in summary.columns if c.startswith("transfer") and not c.endswith(("std", "delta"))]
    if transfer_cols:
        plots.accuracy_bars(summary, transfer_cols, pdir / "transfer.png", f"transfer from {ds}")
    history_files = dict(zip((tuple(r.values()) for r in runs(params)), args.inputs["history"]))
    hist = {m: mean_history([f for (_, rm, _), f in history_files.items() if rm == m]) for m in methods}
    plots.curves(hist, "knn_top1", pdir / "knn_vs_epoch.png", f"{ds}: online kNN monitor", "kNN top-1 (%)")
    extra = []
    sepp = positives.sepp_table(summary, params["methods"])
    if len(sepp):
        tables.write_table(sepp.round(2), tdir / "sepp", f"{ds}: SePP-ID variants vs their host (last epoch)")
        extra += ["## Positives beyond augmentation: variant vs host", "", tables.markdown(sepp.round(2)), ""]
        for host in sorted(set(sepp["host"])):
            names = [host] + list(sepp.index[sepp["host"] == host])
            plots.curves({n: hist[n] for n in names}, "knn_top1", pdir / f"convergence_{host}.png",
                         f"{ds}: convergence, {host} vs its variants", "kNN top-1 (%)")
            extra += [f"![convergence {host}](plots/convergence_{host}.png)", ""]
    diag_files = [Path(f) for f in args.inputs["pairs"]]
    sampler = positives.sampler_table(diag_files)
    if len(sampler):
        tables.write_table(sampler.round(2), tdir / "sampler_precision", f"{ds}: Semantic Sampler pair precision vs K")
        extra += ["## Semantic Sampler: pair precision (labels used only for this report)", "",
                  tables.markdown(sampler.round(2)), ""]
    last = {m: h.iloc[-1].to_dict() for m, h in hist.items() if len(h)}
    neigh = positives.neighbour_table(summary, params["methods"], last)
    if len(neigh) > 1:
        tables.write_table(neigh.round(2), tdir / "neighbours",
                           f"{ds}: neighbour methods; the published column is pc-cp's CIFAR-10 R18 reproduction")
        extra += ["## Neighbour methods (purity: share of retrieved neighbours with the anchor's label)", "",
                  tables.markdown(neigh.round(2)), "",
                  "The published column is pc-cp's CIFAR-10 ResNet-18 200-epoch linear accuracy: another dataset "
                  "and budget, for orientation only.", ""]
    study = positives.study_table(summary, params["methods"])
    if len(study):
        tables.write_table(study.round(2), tdir / "pair_study", f"{ds}: pair-set study, relative gain (S-A)/A")
        extra += ["## Semantic-pair study (matched sets S/A/A2/M)", "", tables.markdown(study.round(2)), ""]
    lines = [
        f"# sempos report: {ds}",
        "",
        f"Methods: {', '.join(methods)}; seeds: {params['seeds']}; backbone: {params['backbone']}; "
        f"pretraining epochs: {params['pretrain']['epochs']} on {params['data']['train_subset'] or 'all'} images.",
        "Last-epoch numbers (no selection on the test set). kNN: k={k}, T={t}.".format(
            k=params["eval"]["knn"]["k"], t=params["eval"]["knn"]["temperature"]),
        "",
        "## Our results (mean ± std over seeds; Δ to the baseline in brackets)",
        "",
        tables.markdown(tables.pretty(summary)),
        "",
        "Tables: [main](tables/main.md) ([csv](tables/main.csv), [tex](tables/main.tex)), "
        "[per seed](tables/per_seed.md).",
        "",
        "![accuracy](plots/accuracy.png)",
        "",
        "![kNN vs epoch](plots/knn_vs_epoch.png)",
        "",
    ]
    if transfer_cols:
        lines += ["![transfer](plots/transfer.png)", ""]
    lines += extra
    lines += [
        "## Published numbers (not ours; shown for orientation only)",
        "",
        f"Source: {published.PC_CP}.",
        "",
        tables.markdown(published.small_scale_table()),
        "",
    ]
    save_text(tables.pretty(summary).to_csv(), tdir / "summary.csv")
    save_json(metrics_summary(summary), args.outputs["metrics"])
    save_text("\n".join(lines), args.outputs["report"])


if __name__ == "__main__":
    raise SystemExit(run_stage("report", (), body))
