"""Report tables: mean ± std over seeds, deltas to the baseline, and a dash where a metric was not run."""

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
    assert s.loc["simclr", "linear top1 delta"] == 11.0
    assert s.loc["nnclr", "seeds"] == 1 and pd.isna(s.loc["nnclr", "linear top1 std"])


def test_pretty_cells():
    p = pretty(summarize(per_seed(), ["random_init", "simclr", "nnclr"], "random_init"))
    assert p.loc["simclr", "linear top1"] == "72.00 ± 2.83 (+11.00)"
    assert p.loc["random_init", "linear top1"] == "61.00 ± 1.41"  # no delta against itself
    assert p.loc["nnclr", "linear top1"] == "66.00 (+5.00)"
    assert p.loc["nnclr", "det AP"] == "–"  # detection was not run for nnclr: no 'nan' in the table


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
