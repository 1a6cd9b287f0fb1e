"""Semi-supervised fine-tuning: learns, is deterministic, picks its grid point on val and reads test once."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import fake_prepared
from sempos.augment import Normalizer
from sempos.data.prepare import split_indices
from sempos.errors import ConfigError, DatasetError, NonFiniteLossError
from sempos.eval import finetune as ft
from sempos.models.resnet import build_backbone

# Blobs encode the class by position, so the test keeps crops large and flips off (a flip swaps classes).
CFG = {"lr_grid": [0.4, 1e-4], "batch_size": 32, "crop_scale": [0.7, 1.0], "flip_p": 0.0}


class TinyNet(nn.Module):
    """A small conv net with the backbone contract (feat_dim); keeps a 2x2 map so position survives pooling."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.feat_dim = width * 4

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def setup():
    data = fake_prepared(n_train=320, n_test=128, size=16)
    torch.manual_seed(0)
    return data, TinyNet(), Normalizer.fit(data["train_x"], "cpu")


def _run(setup, recipe="simclr", cfg=CFG, test_y=None, seed=0, epochs=4, train=None, val=None):
    data, bb, norm = setup
    train = torch.arange(0, 192) if train is None else train
    val = torch.arange(256, 320) if val is None else val
    return ft.finetune(bb, norm, data["train_x"], data["train_y"], train, val, data["test_x"],
                       data["test_y"] if test_y is None else test_y, 4, recipe, cfg, epochs, seed, "cpu")


@pytest.fixture(scope="module")
def baseline(setup):
    return _run(setup)


def test_finetune_beats_chance_and_is_deterministic(setup, baseline):
    a = baseline
    assert a["top1"] > 60.0, a  # 4 classes: chance is 25%
    assert _run(setup) == a
    assert a["lr"] == 0.4 and a["selected_on"] == "val" and a["epochs"] == 4 and a["labelled_images"] == 192
    assert [(g["lr"], g["head_mult"]) for g in a["grid"]] == [(0.4, 1.0), (1e-4, 1.0)]
    assert a["lr_effective"] == pytest.approx(0.4 * 32 / 256)
    assert a["val_top1"] > a["grid"][1]["val_top1"]


def test_choice_is_made_on_val_never_on_test(setup, baseline, monkeypatch):
    """Garbage test labels change nothing about the choice; the test images are predicted exactly once, after
    every grid point has been trained and scored on val."""
    data = setup[0]
    garbage = torch.randint(0, 4, data["test_y"].shape, generator=torch.Generator().manual_seed(5))
    events = []
    real_train, real_predict = ft.train_one, ft.predict
    monkeypatch.setattr(ft, "train_one", lambda *a, **k: events.append("train") or real_train(*a, **k))

    def spy_predict(bb, head, images, *rest):
        events.append("test" if images.data_ptr() == data["test_x"].data_ptr() else "val")
        return real_predict(bb, head, images, *rest)

    monkeypatch.setattr(ft, "predict", spy_predict)
    b = _run(setup, test_y=garbage)
    assert events == ["train", "val", "train", "val", "test"]
    a = baseline
    assert (a["lr"], a["val_top1"], a["grid"]) == (b["lr"], b["val_top1"], b["grid"])
    assert a["top1"] != b["top1"]  # the garbage labels were scored, but only after selection


def test_stage_subsets_from_prepare_fine_tune(setup, monkeypatch):
    """The prepared 25% subset (drawn from the train split, disjoint from val) feeds fine-tuning directly;
    the reported top-1 is the chosen network's accuracy on the test images."""
    data = setup[0]
    splits = split_indices(data["train_y"].numpy(), val_size=64, train_subset=0, fractions=[25])
    train, val = torch.from_numpy(splits["semi"]["25"]), torch.from_numpy(splits["val"])
    trained_on, scores = [], []
    real_train, real_predict = ft.train_one, ft.predict
    monkeypatch.setattr(ft, "train_one", lambda bb, norm, x, y, idx, *a: trained_on.append(idx.clone())
                        or real_train(bb, norm, x, y, idx, *a))
    monkeypatch.setattr(ft, "predict", lambda *a: scores.append(real_predict(*a)) or scores[-1])
    res = _run(setup, train=train, val=val, epochs=2)
    assert res["labelled_images"] == len(train) and all(torch.equal(t, train) for t in trained_on)
    test_scores = scores[-1]  # the test split is predicted last, once
    hand = 100.0 * (test_scores.argmax(1) == data["test_y"]).float().mean().item()
    assert len(test_scores) == len(data["test_y"]) and res["top1"] == pytest.approx(hand)
    with pytest.raises(DatasetError, match="share"):
        _run(setup, train=torch.cat([train, val[:3]]), val=val, epochs=1)


def test_real_backbone_runs_and_is_deterministic():
    data = fake_prepared(n_train=64, n_test=16, size=8)
    torch.manual_seed(0)
    bb = build_backbone("resnet18_cifar", 2, 1)
    norm = Normalizer.fit(data["train_x"], "cpu")
    args = (bb, norm, data["train_x"], data["train_y"], torch.arange(32), torch.arange(32, 64), data["test_x"],
            data["test_y"], 4, "mmselfsup", {"lr_grid": [0.1], "head_mult": [1, 10], "batch_size": 16}, 1, 3, "cpu")
    a, b = ft.finetune(*args), ft.finetune(*args)
    assert a == b and a["recipe"] == "mmselfsup" and len(a["grid"]) == 2


def test_pretrained_weights_are_not_modified(setup, baseline):
    """Every grid point starts from the same pretrained weights: fine-tuning trains a copy."""
    torch.manual_seed(0)
    fresh = TinyNet()  # built exactly as the fixture built the backbone that `baseline` fine-tuned
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in setup[1].state_dict().items())


def test_recipes_schedules_and_defaults():
    mm = ft.resolve_recipe("mmselfsup", {})
    assert mm.grid() == [(lr, m) for lr in (0.1, 0.01, 0.001) for m in (1.0, 10.0, 100.0)]
    assert (mm.weight_decay, mm.nesterov, mm.momentum) == (5e-4, False, 0.9)
    # Steps at epochs 12 and 16 of 20 (gamma 0.2), scaled with the epoch count.
    f20 = [ft.lr_factor(mm, e, 0, 10, 20) for e in range(20)]
    assert f20[:12] == [1.0] * 12 and f20[12:16] == pytest.approx([0.2] * 4) and f20[16:] == pytest.approx([0.04] * 4)
    f10 = [ft.lr_factor(mm, e, 0, 10, 10) for e in range(10)]
    assert f10[5] == 1.0 and f10[6] == pytest.approx(0.2) and f10[8] == pytest.approx(0.04)
    sc = ft.resolve_recipe("simclr", {})
    assert (sc.nesterov, sc.weight_decay, sc.momentum, sc.head_mult) == (True, 0.0, 0.9, (1.0,))
    aug = sc.augment
    assert (aug.jitter_p, aug.grayscale_p, aug.blur_p, aug.solarize_p) == (0.0, 0.0, 0.0, 0.0) and aug.flip_p == 0.5
    assert ft.lr_factor(sc, 0, 0, 10, 3) == 1.0 and ft.lr_factor(sc, 1, 0, 10, 2) == pytest.approx(0.5)
    assert ft.default_epochs("simclr", 1) == 60 and ft.default_epochs("simclr", 10) == 30
    assert ft.default_epochs("mmselfsup", 1) == 20
    # The stage's section (recipe, fractions, per-fraction epochs) is accepted alongside the hyper-parameters.
    ft.resolve_recipe("simclr", {"recipe": "simclr", "fractions": [1], "epochs": {"1": 3}, "lr_grid": [0.1]})


@pytest.mark.parametrize("recipe,cfg,match", [
    ("nope", {}, "unknown fine-tuning recipe"),
    ("simclr", {"lr_gird": [0.1]}, "unknown key"),
    ("simclr", {"head_mult": [10]}, "mmselfsup recipe only"),
    ("simclr", {"lr_grid": []}, "non-empty"),
    ("mmselfsup", {"lr_steps": [12, 16]}, "fractions of training"),
    ("simclr", {"schedule": "poly"}, "unknown"),
])
def test_bad_config_is_reported(setup, recipe, cfg, match):
    with pytest.raises(ConfigError, match=match):
        _run(setup, recipe=recipe, cfg=cfg, epochs=1)


def test_divergent_grid_points_are_skipped_and_all_divergent_is_reported(setup):
    res = _run(setup, cfg={**CFG, "lr_grid": [1e30, 0.4]}, epochs=1)
    assert res["grid"][0]["diverged"] and not res["grid"][1]["diverged"] and res["lr"] == 0.4
    with pytest.raises(NonFiniteLossError, match="lower eval.semisup.lr_grid"):
        _run(setup, cfg={**CFG, "lr_grid": [1e30]}, epochs=1)


def test_default_epochs_follow_label_fraction(setup, monkeypatch):
    seen = []
    monkeypatch.setattr(ft, "train_one", lambda *a: seen.append(a[7]) or None)
    with pytest.raises(NonFiniteLossError):  # the stub "diverges": only the epoch count matters here
        _run(setup, epochs=None, train=torch.arange(0, 3))
    assert seen == [60, 60]  # 3 of 320 images is about 1%: SimCLR's 60 epochs
    seen.clear()
    with pytest.raises(NonFiniteLossError):
        _run(setup, epochs=None, cfg={**CFG, "epochs": 4})
    assert seen == [4, 4]
    assert np.isclose(ft.default_epochs("simclr", 100 * 32 / 320), 30)
