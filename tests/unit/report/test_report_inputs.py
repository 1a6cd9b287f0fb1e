"""The report reads exactly the metrics files of the current DAG (the stage table's report inputs)."""

import json
from pathlib import Path

from sempos.config import load_params
from sempos.pipeline import TRANSFER, fill, job
from sempos.report.tables import collect

REPO = Path(__file__).resolve().parents[3]


def put(path, **values):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(values))


def test_stray_seeds_and_stale_targets_are_not_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = load_params(REPO / "params.yaml")  # seeds [0, 1, 2] (some methods 0 only), transfer targets [digits]
    p["eval"]["detection"]["methods"] = ["simclr"]
    inputs = job("report", p, {}).inputs

    def seed(f, at):
        return int(f.split("/")[at].removeprefix("seed"))

    for i, f in enumerate(inputs["knn"] + inputs["linear"]):
        put(f, method=f.split("/")[3], seed=seed(f, 4), top1=float(i), top5=90.0)
    for f in inputs["transfer"]:
        put(f, method=f.split("/")[4], seed=seed(f, 5), target="digits", top1=50.0)
    for f in inputs["semisup"]:
        put(f, method=f.split("/")[3], seed=seed(f, 4), fraction=float(f.split("frac")[1].split("/")[0]), top1=9.0,
            top5=40.0)
    for f in inputs["detect"]:
        put(f, mean={"AP": 1.0, "AP50": 2.0, "AP75": 0.5})
    # Left over from other runs: a seed this DAG does not train, a target it no longer asks for.
    put("results/knn/fmnist/simclr/seed7/metrics.json", method="simclr", seed=7, top1=100.0, top5=100.0)
    put(fill(TRANSFER, {"target": "fmnist_heldout", "ds": "fmnist", "method": "simclr", "seed": "0"}),
        method="simclr", seed=0, target="fmnist_heldout", top1=99.0)

    df = collect(inputs)
    assert sorted(df.index.get_level_values("seed").unique()) == sorted(p["seeds"])  # not the stray seed 7
    assert "transfer fmnist_heldout top1" not in df.columns
    assert df.loc[("simclr", 0), "knn top1"] == float(inputs["knn"].index("results/knn/fmnist/simclr/seed0/metrics.json"))
    assert set(df.index.get_level_values("method")) == set(p["methods"])
    assert df["det AP"].notna().sum() == len(p["seeds"])  # simclr's three seeds, nothing else
