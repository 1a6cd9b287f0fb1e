"""MoCo's linear protocol: step schedule by value, a frozen backbone in eval mode (BN statistics untouched),
a classifier that learns a planted signal, deterministic runs, and the same code on encoded images."""

import torch
from conftest import encoded_prepared, fake_prepared

from sempos.augment import Normalizer
from sempos.eval.linear import AUGMENTED_DEFAULTS, _lr_mult, linear_augmented
from sempos.models.resnet import build_backbone


def test_step_schedule_is_moco_s():
    cfg = dict(AUGMENTED_DEFAULTS)
    assert [_lr_mult(cfg, e, 0, 10) for e in (0, 59, 60, 79, 80, 99)] == [1, 1, 0.1, 0.1, 0.1 ** 2, 0.1 ** 2]
    assert (cfg["lr"], cfg["epochs"], cfg["batch_size"], cfg["weight_decay"]) == (30.0, 100, 256, 0.0)


class GridMeans(torch.nn.Module):
    """A 'backbone' whose features are the mean intensities of a 4 x 4 grid: enough for the planted blobs."""

    feat_dim, in_channels = 16, 1

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(1)

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(self.bn(x), 4).flatten(1) * 10


def test_frozen_backbone_and_a_learned_classifier():
    data = fake_prepared(n_train=256, n_test=128)
    bb = GridMeans()
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    norm = Normalizer.fit(data["train_x"], "cpu")
    cfg = {"epochs": 6, "batch_size": 32, "lr": 1.0, "lr_steps": [4], "crop_scale": [0.8, 1.0]}
    args = (bb, norm, data["train_x"], data["train_y"], data["splits"]["train"], data["test_x"], data["test_y"], 4)
    out = linear_augmented(*args, cfg, seed=0)
    assert all(torch.equal(v, before[k]) for k, v in bb.state_dict().items())  # eval mode: BN stats untouched
    assert out["top1"] > 60 and out["protocol"] == "augmented" and out["epochs"] == 6
    assert linear_augmented(*args, cfg, seed=0) == out


def test_runs_on_encoded_images(tmp_path):
    from sempos.data.prepare import load_prepared

    data = load_prepared(encoded_prepared(tmp_path, per_class=4, val_per_class=2, val_size=0))
    bb = build_backbone("resnet18_cifar", 4, 3)
    norm = Normalizer(data["train_x"].mean, data["train_x"].std, "cpu")
    out = linear_augmented(bb, norm, data["train_x"], data["train_y"], data["splits"]["train"], data["test_x"],
                           data["test_y"], 4, {"epochs": 1, "batch_size": 8}, seed=0)
    assert 0 <= out["top1"] <= 100 and out["train_top1"] >= 0
