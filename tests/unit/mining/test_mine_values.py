"""mine() by value with a planted backbone: image i (every pixel = i) embeds to a chosen vector, so the pairs,
their cosines and the report can be computed by hand. load_backbone is replaced; extract() is the real one."""

import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sempos.augment import Normalizer
from sempos.errors import ConfigError, InvalidValueError
from sempos.mining.sampler import SamplerConfig, mine

# Unit vectors at 0, 10, 25, 90 degrees: k=1 neighbours A->B, B->A, C->B, D->C (cf. test_mining._planted).
DEG = torch.tensor([0.0, 10.0, 25.0, 90.0])
PLANE = torch.stack([torch.deg2rad(DEG).cos(), torch.deg2rad(DEG).sin()], 1)


class Planted(torch.nn.Module):
    """Reads the image id from the pixel value and returns table[id]; records the image sizes it is fed."""

    in_channels = 1

    def __init__(self, table):
        super().__init__()
        self.table, self.sizes = table, []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        ids = (x.mean(dim=(1, 2, 3)) * 255).round().long()  # the Normalizer below is the identity on [0, 1]
        return self.table[ids]


def planted_run(tmp_path, monkeypatch, table, pretrain, size=8, meta=None):
    n_img = len(table)
    x = torch.arange(n_img, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    data = {"train_x": x, "train_y": torch.arange(n_img) % 2, "splits": {"pretrain": torch.as_tensor(pretrain)}}
    bb = Planted(table)
    meta = {"image_size": size, "feat_dim": table.shape[1]} if meta is None else meta
    seen_devices = []

    def load_backbone(path, device="cpu"):
        seen_devices.append(device)
        return bb, Normalizer([0.0], [1.0], device), meta

    monkeypatch.setattr("sempos.models.checkpoint.load_backbone", load_backbone)
    path = tmp_path / "backbone.pt"
    path.write_bytes(b"")
    return path, data, bb


def test_mine_returns_the_hand_computed_pairs_as_dataset_ids(tmp_path, monkeypatch, caplog):
    table = torch.cat([torch.zeros(3, 2), PLANE])  # images 0-2 are outside the pretraining subset
    path, data, _ = planted_run(tmp_path, monkeypatch, table, [3, 4, 5, 6])
    with caplog.at_level(logging.WARNING, logger="sempos.mining.sampler"):
        pairs, cos, diag = mine(path, data, SamplerConfig(k=1, dup_threshold=None))  # default device
    assert pairs.tolist() == [[3, 4], [4, 3], [5, 4], [6, 5]]
    assert torch.allclose(cos, torch.cos(torch.deg2rad(torch.tensor([10.0, 10.0, 15.0, 65.0]))), atol=1e-6)
    assert diag["feature_dim"] == 2 and diag["num_images"] == 4 and diag["config"]["k"] == 1
    assert not caplog.records  # pairs were kept: nothing to warn about


def test_mine_warns_when_no_pair_is_kept(tmp_path, monkeypatch, caplog):
    path, data, _ = planted_run(tmp_path, monkeypatch, PLANE, [0, 1, 2, 3])
    with caplog.at_level(logging.WARNING, logger="sempos.mining.sampler"):
        pairs, cos, diag = mine(path, data, {"k": 1, "threshold": 0.999, "dup_threshold": 1.0}, "cpu")
    assert pairs.shape == (0, 2) and len(cos) == 0 and diag["removed_by"]["threshold"] == 4
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "kept no pairs" in caplog.text


def test_mine_smallest_subsets_k_equal_n_minus_1(tmp_path, monkeypatch):
    path, data, _ = planted_run(tmp_path, monkeypatch, PLANE, [1, 3])
    pairs, cos, _ = mine(path, data, {"k": 1, "dup_threshold": None}, "cpu")
    assert pairs.tolist() == [[1, 3], [3, 1]] and torch.allclose(cos, torch.full((2,), math.cos(math.radians(80))))
    path, data, _ = planted_run(tmp_path, monkeypatch, PLANE, [0, 1, 2])
    pairs, _, _ = mine(path, data, {"k": 2, "dup_threshold": None}, "cpu")
    assert pairs.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 1], [2, 0]]
    with pytest.raises(ConfigError, match=r"k=3 needs at least k \+ 1 = 4"):
        mine(path, data, {"k": 3}, "cpu")


def test_mine_k_max_argument_and_its_cap_at_n_minus_1(tmp_path, monkeypatch):
    path, data, _ = planted_run(tmp_path, monkeypatch, PLANE, [0, 1, 2, 3])
    pairs, _, diag = mine(path, data, {"k": 1, "dup_threshold": None}, "cpu", k_max=2)
    assert len(pairs) == 4 and diag["config"]["k_max"] == 2
    assert diag["precision_vs_k"] == {"1": {"num_pairs": 4, "pair_precision": 0.0},
                                      "2": {"num_pairs": 8, "pair_precision": 37.5}}
    # More neighbours than there are other images: the table stops at N - 1 = 3.
    _, _, diag = mine(path, data, {"k": 1, "dup_threshold": None, "k_max": 10}, "cpu")
    assert list(diag["precision_vs_k"]) == ["1", "2", "3"] and diag["precision_vs_k"]["3"]["num_pairs"] == 12
    _, _, diag = mine(path, data, {"k": 3, "dup_threshold": None}, "cpu", k_max=10)
    assert list(diag["precision_vs_k"]) == ["1", "2", "3"]


def test_mine_resizes_images_to_the_pretraining_size(tmp_path, monkeypatch):
    path, data, bb = planted_run(tmp_path, monkeypatch, PLANE, [0, 1, 2, 3], size=8, meta={"image_size": 12})
    pairs, _, diag = mine(path, data, {"k": 1, "dup_threshold": None}, "cpu")
    assert bb.sizes == [(12, 12)] and pairs.tolist() == [[0, 1], [1, 0], [2, 1], [3, 2]]
    assert diag["feature_dim"] is None  # the backbone's meta does not say


def test_mine_normalises_features_before_casting_to_half(tmp_path, monkeypatch):
    # Raw features of norm 1e6 overflow fp16 (max 65504); unit-normalised ones do not.
    path, data, _ = planted_run(tmp_path, monkeypatch, PLANE * 1e6, [0, 1, 2, 3])
    pairs, cos, _ = mine(path, data, {"k": 1, "dup_threshold": None, "emb_dtype": "fp16"}, "cpu")
    assert pairs.tolist() == [[0, 1], [1, 0], [2, 1], [3, 2]]
    assert torch.allclose(cos, torch.cos(torch.deg2rad(torch.tensor([10.0, 10.0, 15.0, 65.0]))), atol=2e-3)


def test_mine_scores_the_bf16_rounded_embeddings(tmp_path, monkeypatch):
    path, data, _ = planted_run(tmp_path, monkeypatch, PLANE, [0, 1, 2, 3])
    pairs, cos, _ = mine(path, data, {"k": 1, "dup_threshold": None, "emb_dtype": "bf16"}, "cpu")
    e = F.normalize(F.normalize(PLANE, dim=1).bfloat16().float(), dim=1)
    ref = (e[pairs[:, 0]] * e[pairs[:, 1]]).sum(1)
    exact = (PLANE[pairs[:, 0]] * PLANE[pairs[:, 1]]).sum(1)
    assert torch.allclose(cos, ref, atol=1e-6) and (cos - exact).abs().max() > 1e-4


def test_mine_rejects_non_finite_features(tmp_path, monkeypatch):
    table = PLANE.clone()
    table[2, 0] = float("nan")
    path, data, _ = planted_run(tmp_path, monkeypatch, table, [0, 1, 2, 3])
    with pytest.raises(InvalidValueError, match="NaN or inf"):
        mine(path, data, {"k": 1}, "cpu")


def test_mine_reads_a_real_backbone_file_with_the_default_device(tmp_path):
    from sempos.io import save_torch
    from sempos.models.resnet import build_backbone

    torch.manual_seed(0)
    meta = {"arch": "resnet18_cifar", "width": 2, "in_channels": 1, "image_size": 8, "feat_dim": 16,
            "norm_mean": [0.3], "norm_std": [0.3]}
    path = Path(tmp_path) / "backbone.pt"
    save_torch({"meta": meta, "state_dict": build_backbone(arch="resnet18_cifar", width=2, in_channels=1,
                                                           image_size=8).state_dict()}, path)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = {"train_x": x, "train_y": torch.zeros(6, dtype=torch.long), "splits": {"pretrain": torch.arange(6)}}
    p1, c1, d1 = mine(path, data, {"k": 1, "dup_threshold": None})
    p2, c2, _ = mine(path, data, {"k": 1, "dup_threshold": None}, "cpu")
    assert torch.equal(p1, p2) and torch.equal(c1, c2) and len(p1) == 6 and d1["feature_dim"] == 16
