"""PASCAL VOC in its official layout: XML box annotations (difficult flags kept), the detection index of
VOC07+12 trainval / VOC07 test, and the download stage's checksums and messages for the three archives."""

from pathlib import Path

import pytest
from conftest import fake_voc_archives, place_downloaded_files

from sempos.data import catalog, download
from sempos.data.loaders import voc
from sempos.data.prepare import prepare
from sempos.errors import DatasetError


def test_archives_and_checksums_are_the_published_ones():
    spec = catalog.get("voc0712")
    assert {f.name: f.md5 for f in spec.files} == {
        "VOCtrainval_06-Nov-2007.tar": ("c52e279531787c972589f7e41ab4ae64",),
        "VOCtest_06-Nov-2007.tar": ("b6e924de25625d8de591ea690078ad9f",),
        "VOCtrainval_11-May-2012.tar": ("6cd6e144f989b92b3379bac3b3de84fd",)}
    assert all(u.startswith("http") for f in spec.files for u in f.urls)
    # The classification target and the detection set share the VOC2007 archives (one definition).
    assert catalog.get("voc2007").files == spec.files[:2]


def test_annotation_parsing_keeps_difficult_and_converts_boxes(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><size><width>50</width><height>40</height><depth>3</depth></size>"
                   "<object><name>dog</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin>"
                   "<xmax>50</xmax><ymax>40</ymax></bndbox></object>"
                   "<object><name>cat</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>19</xmax><ymax>14</ymax>"
                   "</bndbox></object></annotation>")
    rec = voc.parse_annotation(xml)
    # 1-based inclusive -> pixel edges: (xmin - 1, ymin - 1, xmax, ymax); a missing <difficult> means 0.
    assert rec == {"width": 50, "height": 40, "boxes": [[0.0, 1.0, 50.0, 40.0], [9.0, 9.0, 19.0, 14.0]],
                   "labels": [voc.CLASSES.index("dog"), voc.CLASSES.index("cat")], "difficult": [1, 0]}
    xml.write_text(xml.read_text().replace("<name>cat</name>", "<name>unicorn</name>"))
    with pytest.raises(DatasetError, match="not a VOC class"):
        voc.parse_annotation(xml)
    xml.write_text("<annotation><size><width>5</width>")
    with pytest.raises(DatasetError, match="not a readable VOC annotation"):
        voc.parse_annotation(xml)


def test_detection_index_from_the_three_archives(tmp_path):
    files, truth = fake_voc_archives(n_trainval07=6, n_test07=4, n_trainval12=5)
    raw = tmp_path / "raw"
    place_downloaded_files(raw / "voc0712", files)
    out = prepare("voc0712", raw, tmp_path / "voc0712.pt")
    import torch

    index = torch.load(out, weights_only=False)
    assert index["kind"] == "detection" and index["classes"] == list(voc.CLASSES)
    assert {k: len(v) for k, v in index["sets"].items()} == {"voc_2007_trainval": 6, "voc_2007_test": 4,
                                                              "voc_2012_trainval": 5}
    rec = index["sets"]["voc_2012_trainval"][0]
    objs = truth["2012 trainval"]["2008_000001"]
    assert rec["image_id"] == "2012_2008_000001" and Path(rec["file"]).is_file()
    assert rec["boxes"] == [[o["box"][0] - 1.0, o["box"][1] - 1.0, float(o["box"][2]), float(o["box"][3])]
                            for o in objs]
    assert rec["labels"] == [o["cls"] for o in objs] and rec["difficult"] == [o["difficult"] for o in objs]
    n_difficult = sum(sum(r["difficult"]) for s in index["sets"].values() for r in s)
    assert n_difficult > 0  # the fake flags every 5th object
    assert Path(index["dirs"]["voc_2007_test"]).name == "VOC2007"


def test_missing_archive_names_the_manual_fix(tmp_path, monkeypatch):
    import dataclasses

    spec = catalog.get("voc0712")
    offline = dataclasses.replace(spec, files=tuple(dataclasses.replace(f, urls=()) for f in spec.files),
                                  local_dirs=())
    monkeypatch.setitem(catalog.CATALOG, "voc0712", offline)
    with pytest.raises(DatasetError) as err:
        download.fetch_dataset("voc0712", tmp_path)
    msg = str(err.value)
    assert "VOCtrainval_06-Nov-2007.tar" in msg and "place the official file at" in msg
    assert "VOCtrainval_11-May-2012.tar" in msg  # the hint lists every archive


def test_a_verified_voc2007_download_is_reused(tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    files, _ = fake_voc_archives(n_trainval07=2, n_test07=2)
    spec = catalog.get("voc0712")
    local = tmp_path / "data" / "raw" / "voc2007"
    place_downloaded_files(local, files)
    fixed = tuple(dataclasses.replace(f, urls=(), md5=(hashlib.md5(files[f.name]).hexdigest(),))
                  for f in spec.files[:2])
    monkeypatch.setitem(catalog.CATALOG, "voc0712", dataclasses.replace(spec, files=fixed))
    monkeypatch.chdir(tmp_path)  # local_dirs is relative to the repository root, where stages run
    download.fetch_dataset("voc0712", Path("data/raw"))
    assert (tmp_path / "data/raw/voc0712/VOCtest_06-Nov-2007.tar").read_bytes() == files["VOCtest_06-Nov-2007.tar"]
