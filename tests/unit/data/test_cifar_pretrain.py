"""CIFAR-10 as the pretraining dataset (config/cifar10.yaml): the real stages on a small fake archive.

prepare -> pretrain -> embed -> kNN -> semisup run in-process on 3-channel 32 px images laid out exactly as
the official cifar-10-python.tar.gz, so the overlay's data path is exercised without a GPU or a download.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import place_downloaded, targz

from sempos.config import load_params
from sempos.stages import embed, knn, prepare, pretrain, semisup
from sempos.stages.common import run_stage

REPO = Path(__file__).resolve().parents[3]


def fake_cifar10(n_per_batch=40, n_test=40) -> bytes:
    rng = np.random.default_rng(0)

    def batch(n, offset):
        # Class-dependent mean colour, so the labels are learnable and the splits class-balanced.
        y = [(offset + i) % 10 for i in range(n)]
        x = rng.integers(0, 60, (n, 3, 32, 32)) + np.array(y)[:, None, None, None] * 19
        return pickle.dumps({"data": x.astype(np.uint8).reshape(n, 3072), "labels": y})

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(n_per_batch, i) for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(n_test, 0)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    return targz(members)


@pytest.fixture
def cifar_workdir(tmp_path, monkeypatch):
    place_downloaded(tmp_path / "data" / "raw" / "cifar10", "cifar-10-python.tar.gz", fake_cifar10())
    params = load_params(REPO / "params.yaml", [REPO / "config" / "cifar10.yaml"])
    params["runtime"].update(device="cpu", threads=1, precision="fp32", gpus_per_job=0, progress=False)
    params["data"].update(val_size=20, semi_fractions=[10])
    params["backbone"]["width"] = 4
    params["pretrain"].update(epochs=1, batch_size=32, warmup_epochs=0, knn_monitor=0)
    params["methods"] = {"random_init": params["methods"]["random_init"], "simclr": params["methods"]["simclr"]}
    params["eval"]["semisup"].update(fractions=[10], epochs={"10": 1}, lr_grid=[0.1])
    params["eval"]["detection"]["methods"] = ["random_init"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stage(module, name, wildcards, **values):
    argv = ["--params", "params.yaml"] + [a for k in wildcards for a in (f"--{k}", str(values[k]))]
    assert run_stage(name, wildcards, module.body, argv) == 0


def test_cifar10_overlay_validates_and_pretrains_on_rgb_32px(cifar_workdir):
    stage(prepare, "prepare", ("ds",), ds="cifar10")
    data = torch.load(cifar_workdir / "data/prepared/cifar10.pt", weights_only=False)
    assert tuple(data["train_x"].shape) == (200, 3, 32, 32) and data["train_x"].dtype == torch.uint8
    semi, val = data["splits"]["semi"]["10"], data["splits"]["val"]
    assert len(val) == 20 and not set(semi.tolist()) & set(val.tolist())
    assert len(set(torch.bincount(data["train_y"][semi], minlength=10).tolist())) == 1  # class-balanced

    run = dict(ds="cifar10", method="simclr", seed=0)
    stage(pretrain, "pretrain", ("ds", "method", "seed"), **run)
    ckpt = torch.load(cifar_workdir / "runs/cifar10/simclr/seed0/backbone.pt", weights_only=False)
    assert ckpt["meta"]["image_size"] == 32 and len(ckpt["meta"]["norm_mean"]) == 3

    stage(embed, "embed", ("ds", "method", "seed", "target"), target="cifar10", **run)
    stage(knn, "knn", ("ds", "method", "seed"), **run)
    stage(semisup, "semisup", ("ds", "method", "seed", "frac"), frac="10", **run)
    knn_out = json.loads((cifar_workdir / "results/knn/cifar10/simclr/seed0/metrics.json").read_text())
    semi_out = json.loads((cifar_workdir / "results/semisup/cifar10/simclr/seed0/frac10/metrics.json").read_text())
    # kNN top-1 recomputed by hand from the embedded features: cosine top-k, exp(sim / T) votes.
    feats = torch.load(cifar_workdir / "features/cifar10/simclr/seed0/cifar10.pt", weights_only=False)
    bank, query = (torch.nn.functional.normalize(feats[f"{s}_f"], dim=1) for s in ("train", "test"))
    params = yaml.safe_load((cifar_workdir / "params.yaml").read_text())["eval"]["knn"]
    sims, idx = (query @ bank.t()).topk(min(params["k"], len(bank)), dim=1)
    votes = torch.zeros(len(query), 10).scatter_add_(1, feats["train_y"][idx], (sims / params["temperature"]).exp())
    hand = 100.0 * (votes.argmax(1) == feats["test_y"]).float().mean().item()
    assert knn_out["top1"] == pytest.approx(hand) and (knn_out["k"], knn_out["temperature"]) == \
        (params["k"], params["temperature"])
    assert (len(feats["train_y"]), len(feats["test_y"])) == (180, 40)  # train split (200 - 20 val) and test
    assert semi_out["labelled_images"] == len(semi) and semi_out["fraction"] == 10.0
    assert semi_out["top1"] * 40 / 100 == pytest.approx(round(semi_out["top1"] * 40 / 100))  # of 40 test images
