"""Unlabeled pretraining images (STL-10's unlabeled split, config/stl10.yaml): label -1, pretraining split only,
and every label-based diagnostic or source skips them."""

import json

import numpy as np
import pytest
import torch
from conftest import place_downloaded, targz

from sempos.data.prepare import load_prepared, prepare
from sempos.errors import DatasetError
from sempos.positives import pairsets
from sempos.mining.sampler import diagnostics, pair_precision
from sempos.positives.sources import build_positives, labelled_pool


def fake_stl10(n_train=40, n_test=20, n_unlabeled=30) -> bytes:
    rng = np.random.default_rng(0)

    def x(n):
        return rng.integers(0, 255, n * 3 * 96 * 96, dtype=np.uint8).tobytes()

    members = {"stl10_binary/train_X.bin": x(n_train),
               "stl10_binary/train_y.bin": bytes([1 + i % 10 for i in range(n_train)]),
               "stl10_binary/test_X.bin": x(n_test),
               "stl10_binary/test_y.bin": bytes([1 + i % 10 for i in range(n_test)]),
               "stl10_binary/unlabeled_X.bin": x(n_unlabeled),
               "stl10_binary/class_names.txt": "\n".join(f"s{i}" for i in range(10)).encode() + b"\n"}
    return targz(members)


@pytest.fixture
def stl_raw(tmp_path):
    place_downloaded(tmp_path / "raw" / "stl10", "stl10_binary.tar.gz", fake_stl10())
    return tmp_path / "raw"


def test_unlabeled_split_joins_pretraining_only(stl_raw, tmp_path):
    cfg = {"pretrain": "stl10", "unlabeled": True, "image_size": 32, "val_size": 10, "train_subset": 0,
           "semi_fractions": [25]}
    data = load_prepared(prepare("stl10", stl_raw, tmp_path / "stl10.pt", cfg))
    assert tuple(data["train_x"].shape) == (70, 3, 32, 32)
    assert (data["train_y"][40:] == -1).all() and (data["train_y"][:40] >= 0).all()
    pre = set(data["splits"]["pretrain"].tolist())
    assert pre == set(range(70)) - set(data["splits"]["val"].tolist())  # train split + every unlabeled image
    for name in ("train", "val"):
        assert (data["train_y"][data["splits"][name]] >= 0).all(), name
    assert (data["train_y"][data["splits"]["semi"]["25"]] >= 0).all()
    # Without the option the same archive gives the labelled images only, at the loader's default size.
    plain = load_prepared(prepare("stl10", stl_raw, tmp_path / "plain.pt", {**cfg, "unlabeled": False,
                                                                            "image_size": None}))
    assert tuple(plain["train_x"].shape) == (40, 3, 64, 64)


def test_unlabeled_on_a_dataset_without_one_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no unlabeled split"):
        prepare("digits", tmp_path, tmp_path / "d.pt", {"pretrain": "digits", "unlabeled": True})


def test_label_diagnostics_skip_unknown_labels():
    labels = torch.tensor([0, 0, 1, -1, -1])
    pairs = torch.tensor([[0, 1], [0, 2], [0, 3], [3, 4]])
    assert pair_precision(pairs, labels) == pytest.approx(50.0)  # (0,1) same, (0,2) not; -1 pairs skipped
    assert np.isnan(pair_precision(torch.tensor([[3, 4]]), labels))
    idx = torch.tensor([[1, 3], [0, 2], [0, 1], [0, 1], [3, 0]])
    d = diagnostics(pairs[:2], torch.ones(2), idx, labels, 5)
    # k=1: rows 0,1,2 have labelled first neighbours (same, same, not); rows 3,4 are unlabeled -> 2/3.
    assert d["neighbour_precision_at_k"]["1"] == pytest.approx(200 / 3)
    # k<=2 adds row 1's second neighbour (label 1 vs 0: not) and row 2's (0... label 0 vs 1: not) -> 2/5.
    assert d["neighbour_precision_at_k"]["2"] == pytest.approx(40.0)


def test_oracle_pairs_never_use_unlabeled_images():
    y = torch.tensor([0, 0, 1, 1, -1, -1, -1, -1])
    data = {"train_y": y, "train_x": torch.zeros(8, 1, 4, 4, dtype=torch.uint8),
            "splits": {"pretrain": torch.arange(8)}}
    assert labelled_pool(data).tolist() == [0, 1, 2, 3]
    pos = build_positives({"positives": {"source": "oracle", "mix": "add", "count": 20}}, data, seed=0)
    extra = pos.pairs.fixed[8:]  # after the 8 augmented (i, i) pairs of mix "add"
    assert len(extra) == 20 and (y[extra] >= 0).all() and (y[extra[:, 0]] == y[extra[:, 1]]).all()
    # Why the filter matters: given the whole pool, the raw helper treats -1 as a class of its own.
    raw = pairsets.oracle_pairs(y, torch.arange(8), 8, 0)
    assert (y[raw] == -1).all(1).any()


def test_stl10_overlay_stages_with_unlabeled_images(tmp_path, monkeypatch):
    """prepare -> pretrain (SNCLR's bank, SimCLR) -> mine on the stl10 overlay with -1 labels in the pool."""
    from pathlib import Path

    import pandas as pd
    import yaml

    from sempos.config import load_params
    from sempos.stages import mine, pretrain
    from sempos.stages import prepare as prepare_stage
    from sempos.stages.common import run_stage

    repo = Path(__file__).resolve().parents[3]
    place_downloaded(tmp_path / "data" / "raw" / "stl10", "stl10_binary.tar.gz",
                     fake_stl10(n_train=60, n_test=20, n_unlabeled=60))
    params = load_params(repo / "params.yaml", [repo / "config" / "stl10.yaml"])
    params["runtime"].update(device="cpu", threads=1, precision="fp32", gpus_per_job=0, progress=False)
    params["data"].update(image_size=32, val_size=10, semi_fractions=[])
    params["backbone"]["width"] = 4
    params["pretrain"].update(epochs=1, batch_size=32, warmup_epochs=0, knn_monitor=20)
    keep = ("random_init", "simclr", "simclr_sepp", "snclr")
    params["methods"] = {m: params["methods"][m] for m in keep}
    params["methods"]["snclr"].update(bank_size=64, k=3)
    params["eval"]["semisup"]["fractions"] = []
    params["eval"]["detection"]["methods"] = ["random_init"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)

    def stage(module, name, wildcards, **values):
        argv = ["--params", "params.yaml"] + [a for k in wildcards for a in (f"--{k}", str(values[k]))]
        assert run_stage(name, wildcards, module.body, argv) == 0

    stage(prepare_stage, "prepare", ("ds",), ds="stl10")
    run = ("ds", "method", "seed")
    for method in ("snclr", "simclr"):
        stage(pretrain, "pretrain", run, ds="stl10", method=method, seed=0)
    hist = pd.read_csv(tmp_path / "runs/stl10/snclr/seed0/history.csv")
    assert hist["purity"].dropna().between(0, 1).all()
    # Purity skips -1 labels (test_memory_bank.py); what reaches the bank are the dataset's labels, -1 included.
    data = load_prepared(tmp_path / "data/prepared/stl10.pt")
    bank = torch.load(tmp_path / "runs/stl10/snclr/seed0/checkpoint.pt", weights_only=False)["model"]
    ids, labels = bank["bank.ids"], bank["bank.labels"]
    assert (ids >= 0).all() and torch.equal(labels, data["train_y"][ids])  # 64 rows, all pushed this epoch
    assert (labels == -1).any() and (labels >= 0).any()
    stage(mine, "mine", run, ds="stl10", method="simclr_sepp", seed=0)
    diag = json.loads((tmp_path / "pairs/stl10/simclr_sepp/seed0.json").read_text())
    assert diag["num_images"] == 110  # 50 labelled train-split images + 60 unlabeled
    pairs = pd.read_csv(tmp_path / "pairs/stl10/simclr_sepp/seed0.csv")
    y = data["train_y"].numpy()
    a, b = y[pairs["i"]], y[pairs["j"]]
    known = (a >= 0) & (b >= 0)  # pairs touching an unlabeled image count on neither side
    assert known.any() and diag["pair_precision"] == pytest.approx(100.0 * (a[known] == b[known]).mean())
