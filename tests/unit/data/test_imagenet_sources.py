"""ImageNet in the official layout or an extracted tree, ImageNet-100, image folders; wrong or missing files
name the file, the expected checksum and the manual steps."""

import hashlib

import pytest
from conftest import FAKE_WNIDS, digit_jpegs, fake_ilsvrc

from sempos.data import ilsvrc
from sempos.data.encoded import check_source
from sempos.errors import ConfigError, DatasetError


def test_archives_are_read_in_place_with_devkit_labels(tmp_path, ilsvrc_patch):
    facts = fake_ilsvrc(tmp_path / "in", per_class=3, val_per_class=2)
    ilsvrc_patch(facts)
    lst = ilsvrc.imagenet_listing(tmp_path / "in")
    assert lst.classes == sorted(FAKE_WNIDS)
    assert [it.name for it in lst.train] == facts["train_names"]
    assert [lst.classes[it.label] for it in lst.train] == [n.split("/")[0] for n in facts["train_names"]]
    # Validation labels come from the devkit (its ids are not the sorted-wnid order).
    assert [lst.classes[it.label] for it in lst.test] == facts["val_wnids"]
    assert all(it.path.endswith(".tar") and it.size > 0 for it in lst.train + lst.test)


def test_an_extracted_tree_with_a_flat_val_folder_lists_the_same_images(tmp_path, ilsvrc_patch):
    facts = fake_ilsvrc(tmp_path / "a", per_class=3, val_per_class=2)
    fake_ilsvrc(tmp_path / "t", per_class=3, val_per_class=2, layout="tree")
    ilsvrc_patch(facts)
    a, t = ilsvrc.imagenet_listing(tmp_path / "a"), ilsvrc.imagenet_listing(tmp_path / "t")
    assert [(i.name, i.label) for i in a.train] == [(i.name, i.label) for i in t.train]
    assert [(i.name, i.label) for i in a.test] == [(i.name, i.label) for i in t.test]
    from sempos.data.sources import read_item

    assert read_item(a.train[5]) == read_item(t.train[5])


def test_val_class_folders_need_no_devkit(tmp_path, ilsvrc_patch):
    facts = fake_ilsvrc(tmp_path / "t", per_class=2, val_per_class=1, layout="tree")
    ilsvrc_patch(facts)
    val = tmp_path / "t" / "val"
    for k, f in enumerate(sorted(val.iterdir())):
        (val / facts["val_wnids"][k]).mkdir(exist_ok=True)
        f.rename(val / facts["val_wnids"][k] / f.name)
    (tmp_path / "t" / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    lst = ilsvrc.imagenet_listing(tmp_path / "t")
    assert sorted(lst.classes[i.label] for i in lst.test) == sorted(facts["val_wnids"])


def test_a_wrong_md5_names_the_file_the_expected_md5_and_the_manual_steps(tmp_path, ilsvrc_patch):
    facts = fake_ilsvrc(tmp_path / "in", per_class=1, val_per_class=1)
    ilsvrc_patch(facts)
    ilsvrc.MD5[ilsvrc.VAL_TAR] = "29b22e2961454d5413ddabcf34fc5622"  # the official one: the fake does not match
    cfg = {"pretrain": "imagenet", "root": str(tmp_path / "in"), "semi_fractions": []}
    with pytest.raises(DatasetError) as err:
        check_source("imagenet", tmp_path / "raw" / "imagenet", cfg)
    msg = str(err.value)
    got = hashlib.md5((tmp_path / "in" / ilsvrc.VAL_TAR).read_bytes()).hexdigest()
    assert f"ILSVRC2012_img_val.tar has md5 {got}, expected 29b22e2961454d5413ddabcf34fc5622" in msg
    assert "image-net.org" in msg and "1d675b47d978889d74fa0da5fadfb00e" not in msg.split("\n")[0]
    assert not (tmp_path / "raw" / "imagenet" / "MANIFEST.json").exists()


def test_missing_imagenet_prints_the_manual_download_steps(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="manual download(.|\n)*ILSVRC2012_img_train.tar \\(138 GB, md5 "
                                           "1d675b47d978889d74fa0da5fadfb00e\\)"):
        check_source("imagenet", tmp_path / "raw" / "imagenet", {"pretrain": "imagenet", "root": str(tmp_path / "empty")})


def test_the_images_may_not_live_inside_the_download_output(tmp_path):
    with pytest.raises(ConfigError, match="Snakemake and DVC delete"):
        check_source("imagenet", tmp_path / "raw" / "imagenet",
                     {"pretrain": "imagenet", "root": str(tmp_path / "raw" / "imagenet")})


def test_an_incomplete_copy_is_refused_with_the_official_counts(tmp_path):
    fake_ilsvrc(tmp_path / "in", per_class=1, val_per_class=1)
    with pytest.raises(DatasetError, match="holds 4 classes, 4 train and 4 validation.*1000, 1281167 and 50000"):
        ilsvrc.imagenet_listing(tmp_path / "in")


def test_imagenet100_is_the_pinned_cmc_list(tmp_path, ilsvrc_patch):
    classes = ilsvrc.imagenet100_classes()
    assert len(classes) == 100 == len(set(classes)) and classes[:2] == ["n02869837", "n01749939"]
    wnids = tuple(sorted(classes + ["n01440764"]))  # one class more than ImageNet-100 (tench is not in it)
    facts = fake_ilsvrc(tmp_path / "t", per_class=1, val_per_class=1, wnids=wnids, layout="tree")
    ilsvrc_patch({**facts, "counts": (100, 100)}, name="imagenet100", classes=100)
    lst = ilsvrc.imagenet_listing(tmp_path / "t", "imagenet100")
    assert lst.classes == sorted(classes) and len(lst.train) == 100 and len(lst.test) == 100
    assert "n01440764" not in {i.name.split("/")[0] for i in lst.train}


def test_a_changed_imagenet100_list_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "imagenet100.txt"
    bad.write_text("n01440764\n")
    monkeypatch.setattr(ilsvrc, "IMAGENET100_FILE", bad)
    with pytest.raises(DatasetError, match="not the pinned CMC list"):
        ilsvrc.imagenet100_classes()


def test_image_folders_with_and_without_a_val_tree(tmp_path):
    root = tmp_path / "f"
    for k, (body, label) in enumerate(digit_jpegs(20, classes=2)):
        d = root / f"class{label}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{k}.jpg").write_bytes(body)
    (root / "class0" / "notes.txt").write_text("not an image")
    lst = ilsvrc.folder_listing(root)
    assert lst.classes == ["class0", "class1"] and len(lst.train) + len(lst.test) == 20
    assert sorted(i.label for i in lst.test) == [0, 1]  # 10 % of each class, at least one
    assert not {i.name for i in lst.train} & {i.name for i in lst.test}
    (tmp_path / "g").mkdir()
    root.rename(tmp_path / "g" / "train")
    (tmp_path / "g" / "val" / "class1").mkdir(parents=True)
    (tmp_path / "g" / "val" / "class1" / "v.jpg").write_bytes(digit_jpegs(1)[0][0])
    lst = ilsvrc.folder_listing(tmp_path / "g")
    assert len(lst.train) == 20 and [(i.name, i.label) for i in lst.test] == [("class1/v.jpg", 1)]
