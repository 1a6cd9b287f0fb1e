"""prepare for JPEG datasets: an image folder's normalisation from its own eval crops, label lists restricted
to ImageNet-100's classes, validation images outside the label lists, settings that only fit tensors refused."""

import hashlib
import json

import pytest
import torch
from conftest import digit_jpegs

from sempos.data import imagenet_subsets
from sempos.data.encoded import _semi_from_lists, check_source, pack_dataset, prepare_encoded
from sempos.data.jpeg import decode_rgb, resize_center_crop
from sempos.data.prepare import load_prepared
from sempos.data.spec import RemoteFile
from sempos.errors import ConfigError


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data" / "folder"
    for k, (body, label) in enumerate(digit_jpegs(24, classes=3)):
        (root / f"cls{label}").mkdir(parents=True, exist_ok=True)
        (root / f"cls{label}" / f"{k}.jpg").write_bytes(body)
    cfg = {"pretrain": "imagefolder", "root": str(root), "val_size": 3, "semi_fractions": [50], "image_size": 16}
    check_source("imagefolder", tmp_path / "raw" / "imagefolder", cfg)
    pack_dataset("imagefolder", tmp_path / "raw" / "imagefolder", tmp_path / "shards" / "imagefolder.pt", {})
    return tmp_path, cfg


def test_image_folder_statistics_come_from_its_own_eval_crops(folder):
    tmp, cfg = folder
    out = prepare_encoded("imagefolder", tmp / "raw" / "imagefolder", tmp / "shards" / "imagefolder.pt",
                          tmp / "prepared" / "imagefolder.pt", cfg)
    data = load_prepared(out)
    x = data["train_x"]
    assert (x.crop_size, x.eval_resize) == (16, 18)  # eval resize = crop / 0.875
    crops = torch.stack([resize_center_crop(decode_rgb(x.table.read(r)), 18, 16)
                         for r in data["splits"]["pretrain"].tolist()]).double() / 255
    assert x.mean == pytest.approx(crops.mean((0, 2, 3)).tolist(), abs=1e-6)
    assert x.std == pytest.approx(crops.std((0, 2, 3), unbiased=False).tolist(), abs=1e-6)
    semi, val = data["splits"]["semi"]["50"], data["splits"]["val"]
    assert len(val) == 3 and torch.bincount(data["train_y"][semi]).tolist() == [3, 3, 3]  # balanced 50 % of train
    assert not set(semi.tolist()) & set(val.tolist())


def test_tensor_only_settings_are_refused(folder):
    tmp, cfg = folder
    with pytest.raises(ConfigError, match="data.max_train.*train_subset"):
        prepare_encoded("imagefolder", tmp / "raw" / "imagefolder", tmp / "shards" / "imagefolder.pt",
                        tmp / "p.pt", {**cfg, "max_train": 10})


def test_imagenet100_keeps_the_list_images_of_its_classes(tmp_path, monkeypatch):
    listed = ["n01440764_1.JPEG", "n09999999_7.JPEG", "n01443537_3.JPEG"]
    text = "".join(f"{n}\n" for n in listed).encode()
    (tmp_path / "1percent.txt").write_bytes(text)
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"subset_lists": {"1": "1percent.txt"}}))
    monkeypatch.setitem(imagenet_subsets.SUBSET_FILES, 1, RemoteFile("1percent.txt",
                                                                     sha256=(hashlib.sha256(text).hexdigest(),)))
    monkeypatch.setitem(imagenet_subsets.EXPECTED_LINES, 1, 3)
    names = ["n01440764/n01440764_0.JPEG", "n01440764/n01440764_1.JPEG", "n01443537/n01443537_3.JPEG"]
    semi = _semi_from_lists("imagenet100", tmp_path, [1], names, ["n01440764", "n01443537"])
    assert semi["1"].tolist() == [1, 2]  # n09999999 is not one of the dataset's classes
