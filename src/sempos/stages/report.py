"""Tables (md/csv/tex), plots and results/report.md from every metrics file the DAG produced."""

from pathlib import Path

import pandas as pd

from ..io import save_text
from ..pipeline import PAIRS_DIAG, fill, mined_runs
from ..report import plots, positives, published, tables, transfer_table
from .common import run_stage

RESULTS = Path("results")


def mean_history(ds: str, method: str, seeds: list[int]) -> pd.DataFrame:
    frames = [pd.read_csv(f"runs/{ds}/{method}/seed{s}/history.csv") for s in seeds]
    return pd.concat(frames).groupby("epoch", as_index=False).mean(numeric_only=True)


def body(params, args):
    ds = params["data"]["pretrain"]
    methods = list(params["methods"])
    baseline = params["report"].get("baseline")
    per_seed = tables.collect(RESULTS, ds)
    summary = tables.summarize(per_seed, methods, baseline)
    tdir = RESULTS / "tables"
    tables.write_table(per_seed.round(3), tdir / "per_seed", f"{ds}: every metric per method and seed")
    tables.write_table(tables.pretty(summary), tdir / "main", f"{ds}: mean ± std over seeds (Δ to {baseline})")
    tables.write_table(published.small_scale_table(), tdir / "published_small_scale", published.PC_CP)
    pdir = RESULTS / "plots"
    metric_cols = [c for c in ("knn top1", "linear top1") if c in summary.columns]
    plots.accuracy_bars(summary, metric_cols, pdir / "accuracy.png", f"{ds}: last-epoch accuracy")
    transfer_cols = [c for c in summary.columns if c.startswith("transfer") and not c.endswith(("std", "delta"))]
    if transfer_cols:
        plots.accuracy_bars(summary, transfer_cols, pdir / "transfer.png", f"transfer from {ds}")
    hist = {m: mean_history(ds, m, params["seeds"]) for m in methods}
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
    diag_files = [Path(fill(PAIRS_DIAG, r)) for r in mined_runs(params)]
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
    lines += transfer_table.section(RESULTS, ds, methods, tdir, tables.write_table)
    lines += [
        "## Published numbers (not ours; shown for orientation only)",
        "",
        f"Source: {published.PC_CP}.",
        "",
        tables.markdown(published.small_scale_table()),
        "",
    ]
    save_text(tables.pretty(summary).to_csv(), RESULTS / "tables" / "summary.csv")
    save_text("\n".join(lines), RESULTS / "report.md")


if __name__ == "__main__":
    raise SystemExit(run_stage("report", (), body))
