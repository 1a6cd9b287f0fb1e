"""sempos.report.tables by value: the exact cells, columns, index and order of every table on tiny hand-made inputs,
and the helpers (_first, _steps_text, _row_estimate) on their edge cases (missing values, one seed, NaN)."""

import json
import math

import pandas as pd

from sempos.report import stats
from sempos.report.tables import (_first, _row_estimate, _steps_text, budget_table, by_seed, curve, markdown,
                                  pretty, read_budgets, summarize, tidy, write_table)

NAN = float("nan")


def _budget(rows, names=("method", "seed")):
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index = pd.MultiIndex.from_tuples(df.index, names=list(names))
    return df


def _run(epochs=10, ppe=100, batch=32, steps=40, seen=1000):
    return {"epochs": epochs, "pairs_per_epoch": ppe, "batch_size": batch, "optimizer_steps": steps,
            "pairs_seen": seen}


METHODS = {
    "simclr": {"algo": "simclr"},
    "plain": {"algo": "simclr", "positives": {}},
    "matched": {"algo": "simclr", "positives": {"match_steps": "simclr_mined", "source": "mined", "k": 5}},
    "mined": {"algo": "simclr", "positives": {"source": "mined", "k": 5}},
    "mined_eq": {"algo": "byol", "positives": {"source": "mined", "mix": "replace", "equal_steps": True, "k": 3}},
    "study": {"algo": "byol", "positives": {"source": "study_mined", "k": 2, "equal_steps": False}},
    "partner": {"algo": "nnclr", "positives": {"source": "partner", "k": 4}},
    "unused": {"algo": "simclr"},
}


def test_budget_table_cells_columns_and_order():
    runs = {("simclr", 0): _run(steps=40, seen=1000), ("simclr", 1): _run(steps=50, seen=1200),
            ("plain", 0): _run(), ("matched", 0): _run(epochs=20),
            ("mined", 0): _run(ppe=100, batch=32), ("mined", 1): _run(ppe=300, batch=64),
            ("mined_eq", 0): _run(), ("study", 0): _run(), ("partner", 0): _run()}
    order = ["partner", "unused", "simclr", "plain", "matched", "mined", "mined_eq", "study"]
    got = budget_table(_budget(runs), METHODS, order)
    cols = ["algo", "positives", "seeds", "epochs", "pairs/epoch", "batch", "optimiser steps", "pairs seen"]
    expected = pd.DataFrame.from_records([
        ("partner", "nnclr", "partner, add", 1, 10, 100.0, 32, 40.0, 1000.0),
        ("simclr", "simclr", "augment", 2, 10, 100.0, 32, 45.0, 1100.0),
        ("plain", "simclr", "augment", 1, 10, 100.0, 32, 40.0, 1000.0),
        ("matched", "simclr", "augment, steps of simclr_mined", 1, 20, 100.0, 32, 40.0, 1000.0),
        ("mined", "simclr", "mined, add, K=5", 2, 10, 200.0, "32–64", 40.0, 1000.0),
        ("mined_eq", "byol", "mined, replace, equal steps, K=3", 1, 10, 100.0, 32, 40.0, 1000.0),
        ("study", "byol", "study_mined, add, K=2", 1, 10, 100.0, 32, 40.0, 1000.0),
    ], columns=["method"] + cols).set_index("method")
    assert list(got.columns) == cols and got.index.name == "method"
    assert list(got.index) == list(expected.index)
    for m in expected.index:
        assert got.loc[m].tolist() == expected.loc[m].tolist(), m


def test_budget_table_finds_methods_by_level_name_and_empty_budget():
    runs = {("mined", 0): _run(steps=10), ("mined", 1): _run(steps=30)}
    swapped = _budget(runs).swaplevel().sort_index()  # (seed, method): looked up by name, not position
    got = budget_table(swapped, METHODS, ["mined"])
    assert got.loc["mined", "optimiser steps"] == 20.0 and got.loc["mined", "seeds"] == 2
    assert budget_table(pd.DataFrame(), METHODS, ["mined"]).empty


def test_first_single_value_range_and_missing():
    assert _first(pd.Series([5, 5, NAN])) == 5
    assert _first(pd.Series([7])) == 7
    assert _first(pd.Series([300, 100, 200])) == "100–300"
    assert math.isnan(_first(pd.Series([NAN, NAN])))
    assert math.isnan(_first(pd.Series([], dtype=float)))


def test_read_budgets_rows_defaults_and_missing_file(tmp_path):
    full = tmp_path / "a.json"
    full.write_text(json.dumps(_run() | {"monitor_bank": 500, "monitor_queries": 50, "source": "mined"}))
    partial = tmp_path / "b.json"
    partial.write_text(json.dumps({"epochs": 3}))
    df = read_budgets({("b_m", "1"): partial, ("a_m", 0): str(full), ("c_m", 2): tmp_path / "missing.json"})
    assert df.index.names == ["method", "seed"]
    assert list(df.index) == [("a_m", 0), ("b_m", 1), ("c_m", 2)]
    assert list(df.columns) == ["epochs", "pairs_per_epoch", "batch_size", "optimizer_steps", "pairs_seen",
                                "monitor_bank", "monitor_queries", "source"]
    assert df.loc[("a_m", 0)].tolist() == [10, 100, 32, 40, 1000, 500, 50, "mined"]
    assert df.loc[("b_m", 1), "epochs"] == 3 and df.loc[("b_m", 1), "source"] == "augment"
    assert all(math.isnan(df.loc[("c_m", 2), k]) for k in ("epochs", "pairs_seen", "monitor_queries"))
    assert df.loc[("c_m", 2), "source"] == "augment"
    assert read_budgets({}).empty


def test_read_budgets_only_missing_files_gives_nan_not_none(tmp_path):
    df = read_budgets({("x", 0): tmp_path / "none.json"})
    assert math.isnan(df.loc[("x", 0), "epochs"]) and math.isnan(df.loc[("x", 0), "monitor_bank"])
    assert df.loc[("x", 0), "source"] == "augment"


CURVE_COLUMNS = ["epoch", "steps", "n", "mean", "ci_low", "ci_high"]


def test_curve_rows_by_epoch_over_seeds():
    frames = {0: pd.DataFrame({"epoch": [1, 0], "steps": [20, 10], "knn_top1": [40.0, 30.0]}),
              1: pd.DataFrame({"epoch": [0, 1], "steps": [12, NAN], "knn_top1": [34.0, NAN]})}
    got = curve(frames, "knn_top1")
    assert list(got.columns) == CURVE_COLUMNS
    e0 = stats.estimate([30.0, 34.0])
    assert got.iloc[0].tolist()[:4] == [0, 11.0, 2, 32.0]
    assert (got.loc[0, "ci_low"], got.loc[0, "ci_high"]) == (e0.ci_low, e0.ci_high)
    assert got.iloc[1].tolist()[:4] == [1, 20.0, 1, 40.0] and math.isnan(got.loc[1, "ci_low"])


def test_curve_without_the_column_or_steps_and_without_frames():
    got = curve({0: pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5]})}, "knn_top1")
    assert list(got.columns) == CURVE_COLUMNS and list(got["epoch"]) == [0, 1]
    assert list(got["n"]) == [0, 0] and got[["steps", "mean", "ci_low", "ci_high"]].isna().all().all()
    nan_steps = curve({0: pd.DataFrame({"epoch": [0], "steps": [NAN], "knn_top1": [5.0]})}, "knn_top1")
    assert math.isnan(nan_steps.loc[0, "steps"]) and nan_steps.loc[0, "mean"] == 5.0
    empty = curve({}, "knn_top1")
    assert empty.empty and list(empty.columns) == CURVE_COLUMNS


def _summary():
    """A hand-made summary: 'a' with a delta for both methods, 'b' not run for m1 (NaN) but run for m2."""
    cols = {"b": [NAN, 2.0], "b n": [0, 1], "b std": [NAN, NAN], "b ci_low": [NAN, NAN], "b ci_high": [NAN, NAN],
            "a": [10.0, 20.0], "a n": [2, 2], "a std": [1.0, 2.0], "a ci_low": [1.0, 3.0],
            "a ci_high": [19.0, 37.0], "a delta": [0.0, 10.0], "a delta std": [0.0, 4.0],
            "a delta ci_low": [0.0, -26.0], "a delta ci_high": [0.0, 46.0], "a delta n": [2, 2],
            "a delta ci contains 0": [None, True], "seeds": [2, 2], "steps": [1234.4, NAN],
            "pairs seen": [5000.0, 6000.0]}
    return pd.DataFrame(cols, index=pd.Index(["m1", "m2"], name="method"))


def test_tidy_rows_and_columns_by_value():
    t = tidy(_summary())
    assert list(t.columns) == ["method", "metric", "n", "mean", "std", "ci_low", "ci_high", "delta", "delta_std",
                               "delta_ci_low", "delta_ci_high", "delta_n", "delta_ci_contains_0", "steps",
                               "pairs_seen"]
    # m1's 'b' was not run: skipped, and m1's 'a' after it is still there
    assert list(zip(t["method"], t["metric"])) == [("m1", "a"), ("m2", "b"), ("m2", "a")]
    m2a = t.iloc[2]
    assert m2a[["n", "mean", "std", "ci_low", "ci_high", "delta", "delta_std", "delta_ci_low", "delta_ci_high",
                "delta_n", "pairs_seen"]].tolist() == [2, 20.0, 2.0, 3.0, 37.0, 10.0, 4.0, -26.0, 46.0, 2, 6000.0]
    assert m2a["delta_ci_contains_0"] is True and t.iloc[0]["delta_ci_contains_0"] is None
    assert t.iloc[0]["steps"] == 1234.4 and t.iloc[0]["pairs_seen"] == 5000.0


def test_pretty_steps_column_and_cells():
    p = pretty(_summary())
    assert list(p.columns) == ["seeds", "steps", "b", "a"] and p.index.name == "method"
    assert list(p["steps"]) == ["1,234", "–"]
    assert list(p["b"]) == ["–", "2.00 (n=1, no CI)"]
    assert list(p["a"]) == ["10.00 ± 1.00 [1.0, 19.0]", "20.00 ± 2.00 [3.0, 37.0]"]


def test_steps_text_edge_cases():
    assert _steps_text(None) == "–" and _steps_text(NAN) == "–"
    assert _steps_text(1234567.0) == "1,234,567" and _steps_text(0) == "0"


def test_row_estimate_missing_n_or_mean_is_empty():
    s = pd.DataFrame({"a": [5.0, NAN, 7.0], "a n": [NAN, 3, 0], "a std": [NAN, 1.0, NAN],
                      "a ci_low": [NAN, 0.0, NAN], "a ci_high": [NAN, 2.0, NAN]}, index=["x", "y", "z"])
    assert _row_estimate(s, "x", "a") is stats.EMPTY  # n missing, mean present
    assert _row_estimate(s, "y", "a") is stats.EMPTY  # n given, mean missing
    assert _row_estimate(s, "z", "a") is stats.EMPTY


def _per_seed():
    return _budget({("base", 0): {"m": 1.0}, ("base", 1): {"m": 3.0}, ("v", 0): {"m": 2.0}, ("v", 1): {"m": 6.0}})


def test_by_seed_missing_method_or_metric_and_level_by_name():
    df = _per_seed()
    assert by_seed(df, "v", "m") == {0: 2.0, 1: 6.0}
    assert by_seed(df, "ghost", "m") == {} and by_seed(df, "v", "ghost") == {}
    assert by_seed(df.swaplevel().sort_index(), "v", "m") == {0: 2.0, 1: 6.0}


def test_summarize_budget_steps_and_pairs_seen():
    budget = _budget({(0, "v"): _run(steps=10, seen=100), (1, "v"): _run(steps=30, seen=300)},
                     names=("seed", "method"))  # looked up by level name
    s = summarize(_per_seed(), ["base", "v"], "base", budget)
    assert s.loc["v", "steps"] == 20.0 and s.loc["v", "pairs seen"] == 200.0
    assert math.isnan(s.loc["base", "steps"]) and s.loc["v", "m delta"] == 2.0


def test_markdown_exact_text_flattened_index_and_dash():
    df = _budget({("a", 0): {"x": 1.5}, ("b", 1): {"x": NAN}})
    assert markdown(df) == ("| method   |   seed |   x |\n"
                            "|:---------|-------:|----:|\n"
                            "| a        |      0 | 1.5 |\n"
                            "| b        |      1 | –   |")


def test_write_table_csv_without_index_and_latex_dash(tmp_path):
    df = pd.DataFrame({"x": [NAN]}, index=pd.Index(["m"], name="method"))
    md, csv, tex = write_table(df, tmp_path / "t", "cap", csv=pd.DataFrame({"metric": ["x"], "mean": [1.0]}))
    assert csv.read_text() == "metric,mean\nx,1.0\n"
    assert "m & – \\\\" in tex.read_text() and "XX" not in tex.read_text()
