"""The kNN stage on features built so that only cosine (normalised) voting is right for every query."""

import argparse
import json
import math

import torch

from sempos.eval.knn import knn_accuracy
from sempos.io import save_torch
from sempos.stages import knn

U0, U1 = torch.tensor([1.0, 0.0]), torch.tensor([0.6, 0.8])  # unit directions of class 0 and class 1
# Class 0: three bank points of norm 2 along U0; class 1: one point of norm 1 along U1 (cos(U0, U1) = 0.6).
TRAIN_F = torch.stack([2 * U0, 2 * U0, 2 * U0, U1])
TRAIN_Y = torch.tensor([0, 0, 0, 1])
# With k = 4 and T = 0.1 a class-1 query along U1 gets e^10 for class 1 against 3 e^6 for class 0: class 1.
# Unnormalised bank: dot products 1.2 (x3) vs 1 favour class 0; a query of norm 0.1 against the normalised
# bank weighs e^1 against 3 e^0.6, again class 0. Class-0 queries are right either way.
TEST_F = torch.stack([5 * U1, 0.1 * U1, 3 * U0, U0])
TEST_Y = torch.tensor([1, 1, 0, 0])
CFG = {"k": 4, "temperature": 0.1}


def test_knn_stage_normalises_both_sides_before_voting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_torch({"train_f": TRAIN_F, "train_y": TRAIN_Y, "test_f": TEST_F, "test_y": TEST_Y, "num_classes": 2},
               tmp_path / "features/fmnist/m/seed3/fmnist.pt")
    knn.body({"eval": {"knn": dict(CFG)}}, argparse.Namespace(ds="fmnist", method="m", seed="3"))
    out = json.loads((tmp_path / "results/knn/fmnist/m/seed3/metrics.json").read_text())
    assert out == {"method": "m", "seed": 3, "dataset": "fmnist", "k": 4, "temperature": 0.1,
                   "top1": 100.0, "top5": 100.0}


def test_the_features_tell_missing_normalisation_apart():
    """Why the stage test can fail: each side left unnormalised loses one or both class-1 queries."""
    n = torch.nn.functional.normalize
    assert knn_accuracy(TRAIN_F, TRAIN_Y, n(TEST_F, dim=1), TEST_Y, 2, **CFG)["top1"] == 50.0
    assert knn_accuracy(n(TRAIN_F, dim=1), TRAIN_Y, TEST_F, TEST_Y, 2, **CFG)["top1"] == 75.0
    # The hand computation of the comment above, for the normalised class-1 query.
    assert math.exp(10) > 3 * math.exp(6) and math.exp(1) < 3 * math.exp(0.6)
