"""Tables (md/csv/tex), plots, results/report.md and results/metrics.json from the outputs of the current DAG.

The report reads exactly its inputs in the stage table (`args.inputs`: every metrics file, history and pair
diagnostics the params ask for), never a glob of results/, so files left by earlier runs cannot leak in.
Every comparison carries its statistics (report/stats.py): mean ± std and a Student-t 95 % CI over seeds,
the seed count, paired per-seed differences with their CI and a mark where the CI contains 0; methods are
compared by optimiser steps, not epochs (extra pairs add steps).
"""

from pathlib import Path

import pandas as pd

from ..config import seeds_of
from ..io import save_json, save_text
from ..pipeline import runs
from ..report import plots, positives, published, stats, tables, transfer_table
from .common import run_stage


def by_run(params: dict, files: list[str]) -> dict[str, dict[int, Path]]:
    """{method: {seed: file}} from one of the report's per-run input lists (in runs(params) order)."""
    out: dict[str, dict[int, Path]] = {}
    for r, f in zip(runs(params), files, strict=True):
        out.setdefault(r["method"], {})[int(r["seed"])] = Path(f)
    return out


def _monitor_text(budget: pd.DataFrame, params: dict) -> str:
    bank = budget["monitor_bank"].dropna().unique() if len(budget) else []
    queries = budget["monitor_queries"].dropna().unique() if len(budget) else []
    sizes = (f"a bank of {int(max(bank)):,} train-split images queried by the first {int(max(queries)):,} test images"
             if len(bank) and len(queries) else f"pretrain.knn_monitor = {params['pretrain']['knn_monitor']} images")
    return (f"Online kNN monitor (during pretraining, {sizes}; k = 200, T = 0.1): a cheap convergence signal, "
            f"not the kNN evaluation, which uses the whole train split as the bank and scores every test image.")


def _monitor_short(budget: pd.DataFrame) -> str:
    if len(budget) and budget["monitor_bank"].notna().any():
        return (f"online kNN monitor: {int(budget['monitor_bank'].max()):,} train-image bank, "
                f"{int(budget['monitor_queries'].max()):,} test queries")
    return "online kNN monitor"


def _seeds_text(params: dict, methods: list[str]) -> str:
    groups: dict[tuple, list[str]] = {}
    for m in methods:
        groups.setdefault(tuple(seeds_of(params, m)), []).append(m)
    return "; ".join(f"seeds {list(s)}: {', '.join(ms)}" for s, ms in groups.items())


def metrics_summary(summary: pd.DataFrame) -> dict:
    """{method: {metric: mean over seeds}}: results/metrics.json, which `dvc exp show` / `dvc metrics diff` read."""
    cols = [c for c in summary.columns if not c.endswith(tables.STAT_SUFFIXES)]
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
    budget = tables.read_budgets({(m, s): f for m, fs in by_run(params, args.inputs["positives"]).items()
                                  for s, f in fs.items()})
    summary = tables.summarize(per_seed, methods, baseline, budget)
    tdir, pdir = Path(args.outputs["tables"]), Path(args.outputs["plots"])
    metric_cols = tables.metric_columns(summary)

    shown = per_seed.round(3)
    if len(budget):
        shown.insert(0, "steps", budget["optimizer_steps"].reindex(shown.index))
    tables.write_table(shown, tdir / "per_seed", f"{ds}: every metric per method and seed (steps: optimiser steps)")
    main_view = tables.pretty(summary)
    tables.write_table(main_view, tdir / "main", f"{ds}: mean ± std [95 % t CI] over seeds; optimiser steps per method",
                       csv=tables.tidy(summary))
    save_text(summary.to_csv(), tdir / "summary.csv")  # wide and numeric: one row per method
    budget_view = tables.budget_table(budget, params["methods"], methods)
    if len(budget_view):
        tables.write_table(budget_view, tdir / "budget", f"{ds}: training budget per method (mean over seeds)")
    tables.write_table(published.small_scale_table(), tdir / "published_small_scale", published.PC_CP)

    def est(cols):
        return {c: {m: tables.estimates(per_seed, m, c) for m in summary.index} for c in cols}

    main_plot = [c for c in ("knn top1", "linear top1") if c in metric_cols]
    plots.estimates_plot(est(main_plot), pdir / "accuracy.png", f"{ds}: last-epoch accuracy")
    transfer_cols = [c for c in metric_cols if c.startswith("transfer")]
    if transfer_cols:
        plots.estimates_plot(est(transfer_cols), pdir / "transfer.png", f"transfer from {ds}")

    history = {m: {s: pd.read_csv(f) for s, f in fs.items()} for m, fs in by_run(params, args.inputs["history"]).items()}
    curves = {m: tables.curve(history[m], "knn_top1") for m in methods}
    monitor = _monitor_text(budget, params)
    plots.curves(curves, pdir / "knn_monitor.png", f"{ds}: {_monitor_short(budget)} vs optimiser steps",
                 "monitor kNN top-1 (%)")

    extra = []
    comp = positives.compare(per_seed, positives.comparison_pairs(params["methods"], budget), budget)
    if len(comp):
        view = positives.comparison_table(comp)
        tables.write_table(view, tdir / "comparisons", f"{ds}: paired per-seed differences, variant − reference",
                           csv=comp)
        plots.deltas_plot(comp, pdir / "deltas.png", f"{ds}: variants vs their references")
        extra += ["## Variants vs their host and their compute-matched host", "",
                  "Δ = variant − reference, paired by seed, mean [95 % t CI]. A variant trained on D ∪ SPPS takes "
                  "more optimiser steps than its host: the compute-matched host (augmented pairs cycled to the "
                  "variant's pairs per epoch, same epochs and schedule) separates the effect of the pairs from "
                  "that of the extra steps. " + stats.ZERO_MARK + ": the interval contains 0.", "",
                  tables.markdown(view), "", "![deltas](plots/deltas.png)", ""]
        variants = [v for v in methods if positives.is_variant(params["methods"][v])]
        for host in sorted({h for v in variants if (h := positives.host_of(params["methods"], v))}):
            algo = params["methods"][host]["algo"]
            names = [n for n in methods if n == host or (params["methods"][n]["algo"] == algo and (
                n in variants or positives.is_control(params["methods"][n])))]
            plots.curves({n: curves[n] for n in names}, pdir / f"convergence_{host}.png",
                         f"{ds}: convergence of {host}, its variants and controls vs optimiser steps\n"
                         f"({_monitor_short(budget)})", "monitor kNN top-1 (%)")
            extra += [f"![convergence {host}](plots/convergence_{host}.png)", ""]
    diag_files = [Path(f) for f in args.inputs["pairs"]]
    sampler = positives.sampler_table(diag_files)
    if len(sampler):
        tables.write_table(sampler.round(2), tdir / "sampler_precision", f"{ds}: Semantic Sampler pair precision vs K")
        extra += ["## Semantic Sampler: pair precision (labels used only for this report)", "",
                  tables.markdown(sampler.round(2)), ""]
    last = {}
    for m in methods:
        rows = [h.iloc[-1] for h in history[m].values() if len(h)]
        if rows:
            last[m] = pd.DataFrame(rows).mean(numeric_only=True).to_dict()
    neigh = positives.neighbour_table(per_seed, params["methods"], last, budget)
    if len(neigh) > 1:
        tables.write_table(neigh.round(2), tdir / "neighbours",
                           f"{ds}: neighbour methods; the published column is pc-cp's CIFAR-10 R18 reproduction")
        extra += ["## Neighbour methods (purity: share of retrieved neighbours with the anchor's label)", "",
                  tables.markdown(neigh.round(2)), "",
                  "The published column is pc-cp's CIFAR-10 ResNet-18 200-epoch linear accuracy: another dataset "
                  "and budget, for orientation only.", ""]
    study_long, study = positives.study_table(per_seed, params["methods"], budget)
    if len(study):
        tables.write_table(study, tdir / "pair_study", f"{ds}: pair-set study, paired S − A and relative gain (S-A)/A",
                           csv=study_long)
        extra += ["## Semantic-pair study (matched sets S/A/A2/M, equal pairs and steps)", "",
                  tables.markdown(study), ""]
    lines = [
        f"# sempos report: {ds}",
        "",
        f"Methods and seeds: {_seeds_text(params, methods)}. Backbone: {params['backbone']}. Pretraining on "
        f"{params['data']['train_subset'] or 'all'} images; epochs, pairs per epoch and optimiser steps differ "
        f"by method (see the training budget below).",
        "Last-epoch numbers (no selection on the test set). kNN: k={k}, T={t}.".format(
            k=params["eval"]["knn"]["k"], t=params["eval"]["knn"]["temperature"]),
        "",
        "## Our results (mean ± std [95 % Student-t CI] over seeds)",
        "",
        "One seed gives no spread and no interval: such cells say `n=1, no CI`. `steps`: optimiser steps "
        "(mean over seeds). Numbers (mean, std, ci_low, ci_high, n, paired delta to the baseline) are in the CSV.",
        "",
        tables.markdown(main_view),
        "",
        "Tables: [main](tables/main.md) ([csv](tables/main.csv), [tex](tables/main.tex)), "
        "[per seed](tables/per_seed.md), [budget](tables/budget.md).",
        "",
        "![accuracy](plots/accuracy.png)",
        "",
    ]
    if transfer_cols:
        lines += ["![transfer](plots/transfer.png)", ""]
    if len(budget_view):
        lines += ["## Training budget", "", tables.markdown(budget_view), ""]
    lines += [monitor, "", "![online kNN monitor](plots/knn_monitor.png)", ""]
    lines += extra
    lines += transfer_table.section({"linear": args.inputs["transfer"], "finetune": args.inputs["transfer_ft"]}, ds,
                                    methods, tdir, tables.write_table)
    lines += [
        "## Published numbers (not ours; shown for orientation only)",
        "",
        f"Source: {published.PC_CP}.",
        "",
        tables.markdown(published.small_scale_table()),
        "",
    ]
    save_json(metrics_summary(summary), args.outputs["metrics"])
    save_text("\n".join(lines), args.outputs["report"])


if __name__ == "__main__":
    raise SystemExit(run_stage("report", (), body))
