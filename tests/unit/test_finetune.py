import pytest
import torch

from conftest import fake_prepared
from sempos.augment import Normalizer
from sempos.errors import ConfigError
from sempos.eval.finetune import finetune
from sempos.models.resnet import build_backbone

CFG = {"lr_grid": [0.05, 1e-5], "head_mult": [1.0], "batch_size": 32}


def _setup():
    data = fake_prepared(n_train=320, n_test=128)
    torch.manual_seed(0)
    bb = build_backbone("resnet18_cifar", 4, 1)
    norm = Normalizer.fit(data["train_x"], "cpu")
    return data, bb, norm


def _run(data, bb, norm, recipe="simclr", test_y=None, seed=0):
    return finetune(bb, norm, data["train_x"], data["train_y"], torch.arange(0, 128), torch.arange(256, 320),
                    data["test_x"], data["test_y"] if test_y is None else test_y, 4, recipe, CFG, 4, seed, "cpu")


def test_finetune_beats_chance_and_is_deterministic():
    data, bb, norm = _setup()
    a = _run(data, bb, norm)
    b = _run(data, bb, norm)
    assert a["top1"] > 50.0  # 4 classes: chance is 25%
    assert a == b
    assert set(a["val_top1_by_choice"]) == {"lr=0.05,head_mult=1.0", "lr=1e-05,head_mult=1.0"}


def test_choice_is_made_on_val_never_on_test():
    data, bb, norm = _setup()
    garbage = torch.randint(0, 4, data["test_y"].shape, generator=torch.Generator().manual_seed(5))
    a, b = _run(data, bb, norm), _run(data, bb, norm, test_y=garbage)
    assert a["lr"] == b["lr"] and a["val_top1"] == b["val_top1"]


def test_mmselfsup_recipe_and_bad_recipe():
    data, bb, norm = _setup()
    assert 0 <= _run(data, bb, norm, recipe="mmselfsup")["top1"] <= 100
    with pytest.raises(ConfigError, match="unknown fine-tuning recipe"):
        _run(data, bb, norm, recipe="nope")
