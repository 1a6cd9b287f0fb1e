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
