"""Report tables: mean ± std [CI] over seeds, paired deltas to the baseline, and a dash where a metric was not run."""

import math

import pandas as pd

from sempos.report.tables import pretty, summarize


def per_seed():
    rows = {("random_init", 0): {"linear top1": 60.0, "det AP": 1.0},
            ("random_init", 1): {"linear top1": 62.0, "det AP": 3.0},
            ("simclr", 0): {"linear top1": 70.0, "det AP": 5.0},
            ("simclr", 1): {"linear top1": 74.0, "det AP": 7.0},
            ("nnclr", 0): {"linear top1": 66.0, "det AP": float("nan")}}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "seed"])
    return df


def test_summary_mean_std_delta_and_order():
    s = summarize(per_seed(), ["random_init", "simclr", "nnclr"], "random_init")
    assert list(s.index) == ["random_init", "simclr", "nnclr"]
    assert s.loc["simclr", "linear top1"] == 72.0
    assert math.isclose(s.loc["simclr", "linear top1 std"], math.sqrt(8.0))  # sample std of 70, 74
    assert s.loc["simclr", "linear top1 delta"] == 11.0  # paired: (70 - 60 + 74 - 62) / 2
    assert s.loc["simclr", "linear top1 delta n"] == 2
    # 12.706 * sqrt(8) / sqrt(2) = 25.41 around 72
    assert math.isclose(s.loc["simclr", "linear top1 ci_low"], 72 - 25.412, abs_tol=2e-3)
    assert s.loc["nnclr", "seeds"] == 1 and pd.isna(s.loc["nnclr", "linear top1 std"])
    assert pd.isna(s.loc["nnclr", "linear top1 ci_low"]) and s.loc["nnclr", "linear top1 n"] == 1
    assert s.loc["nnclr", "linear top1 delta"] == 6.0  # paired with random_init's seed 0 only
    assert s.loc["nnclr", "linear top1 delta ci contains 0"] is None  # one pair: no interval


def test_pretty_cells():
    p = pretty(summarize(per_seed(), ["random_init", "simclr", "nnclr"], "random_init"))
    assert p.loc["simclr", "linear top1"] == "72.00 ± 2.83 [46.6, 97.4]"
    assert p.loc["nnclr", "linear top1"] == "66.00 (n=1, no CI)"
    assert p.loc["nnclr", "det AP"] == "–"  # detection was not run for nnclr: no 'nan' in the table


def test_tidy_csv_is_numeric():
    from sempos.report.tables import tidy

    t = tidy(summarize(per_seed(), ["random_init", "simclr", "nnclr"], "random_init"))
    row = t[(t["method"] == "simclr") & (t["metric"] == "linear top1")].iloc[0]
    assert row["mean"] == 72.0 and row["n"] == 2 and row["delta"] == 11.0
    assert {"ci_low", "ci_high", "std", "delta_ci_low", "delta_ci_high"} <= set(t.columns)
    assert not ((t["method"] == "nnclr") & (t["metric"] == "det AP")).any()  # not run: no row


def test_written_tables_flatten_multi_index_and_dash_missing(tmp_path):
    from sempos.report.tables import write_table

    df = per_seed()
    md, csv, tex = write_table(df, tmp_path / "per_seed", "caption")
    text = md.read_text()
    header = text.splitlines()[1]
    assert "method" in header and "seed" in header and "('" not in text
    assert "nan" not in text and "–" in text  # nnclr has no detection value
    assert "nan" not in tex.read_text()
    back = pd.read_csv(csv, index_col=[0, 1])
    assert back.loc[("simclr", 1), "linear top1"] == 74.0


def test_collect_reads_every_metrics_file_into_one_row_per_method_and_seed(tmp_path):
    import json

    from sempos.report.tables import collect

    files = {}

    def put(rel, **m):
        path = tmp_path / rel / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(m))
        if not rel.startswith("knn/other/"):  # the report stage is handed its own DAG's files only
            files.setdefault(rel.split("/")[0], []).append(path)

    put("knn/fmnist/simclr/seed0", method="simclr", seed=0, top1=71.5)
    put("knn/fmnist/simclr/seed1", method="simclr", seed=1, top1=72.5)
    put("knn/other/simclr/seed0", method="simclr", seed=0, top1=1.0)  # another DAG's file: not read
    put("linear/fmnist/simclr/seed0", method="simclr", seed=0, top1=80.0, top5=99.0)
    put("transfer/digits/fmnist/simclr/seed0", method="simclr", seed=0, target="digits", top1=55.0)
    put("semisup/fmnist/simclr/seed0/frac10", method="simclr", seed=0, fraction=10.0, top1=60.0, top5=95.0)
    put("semisup/fmnist/simclr/seed0/frac0.5", method="simclr", seed=0, fraction=0.5, top1=20.0, top5=70.0)
    put("detect/fmnist/random_init/seed2", mean={"AP": 1.5, "AP50": 4.0, "AP75": 0.5})
    df = collect(files)
    assert list(df.index) == [("random_init", 2), ("simclr", 0), ("simclr", 1)]
    assert df.index.names == ["method", "seed"]
    row = df.loc[("simclr", 0)]
    assert row["knn top1"] == 71.5 and row["linear top1"] == 80.0 and row["linear top5"] == 99.0
    assert row["transfer digits top1"] == 55.0
    assert (row["semisup 10% top1"], row["semisup 10% top5"], row["semisup 0.5% top1"]) == (60.0, 95.0, 20.0)
    assert df.loc[("simclr", 1), "knn top1"] == 72.5 and math.isnan(df.loc[("simclr", 1), "linear top1"])
    det = df.loc[("random_init", 2)]
    assert (det["det AP"], det["det AP50"], det["det AP75"]) == (1.5, 4.0, 0.5) and math.isnan(det["knn top1"])


def test_summary_without_a_usable_baseline_has_no_deltas_and_pretty_skips_them():
    s = summarize(per_seed(), ["nnclr", "simclr"], "ghost")  # not a method: no deltas (and no error)
    assert not [c for c in s.columns if c.endswith("delta")] and s.index.name == "method"
    assert list(s.index) == ["nnclr", "simclr"] and list(s["seeds"]) == [1, 2]
    p = pretty(summarize(per_seed(), ["nnclr", "simclr"], None))
    # nnclr (first row) has no detection value: a dash, and simclr's cell after it is still filled in.
    # Two seeds: t(1) = 12.706, so 6 ± 1.41 has the interval 6 ± 12.706 * 1.41 / sqrt(2) = [-6.7, 18.7].
    assert list(p["det AP"]) == ["–", "6.00 ± 1.41 [-6.7, 18.7]"]
    assert list(p["linear top1"]) == ["66.00 (n=1, no CI)", "72.00 ± 2.83 [46.6, 97.4]"]
    assert list(p.columns) == ["seeds", "linear top1", "det AP"] and list(p["seeds"]) == [1, 2]


def test_write_table_files_names_caption_escaping_and_dashes(tmp_path):
    from sempos.report.tables import markdown, write_table

    df = pd.DataFrame({"knn top1": [50.0, float("nan")]}, index=pd.Index(["simclr_sepp", "nnclr"], name="method"))
    md, csv, tex = write_table(df, tmp_path / "deep" / "er" / "main", "main table")
    assert [p.name for p in (md, csv, tex)] == ["main.md", "main.csv", "main.tex"] and md.parent.name == "er"
    assert md.read_text() == "<!-- main table -->\n" + markdown(df) + "\n"
    latex = tex.read_text()
    assert r"\caption{main table}" in latex and r"simclr\_sepp" in latex and "–" in latex
    assert markdown(df).splitlines()[2].split("|")[1].strip() == "simclr_sepp"  # a plain index is shown
    assert "–" in markdown(df).splitlines()[3]


def test_collect_reads_whichever_stages_it_is_given(tmp_path):
    import json

    from sempos.report.tables import collect

    assert collect({}).empty  # a DAG without evaluations: no stage's list at all
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps({"method": "simclr", "seed": 0, "top1": 70.0}))
    only_knn = collect({"knn": [f]})
    assert list(only_knn.index) == [("simclr", 0)] and list(only_knn.columns) == ["knn top1"]
