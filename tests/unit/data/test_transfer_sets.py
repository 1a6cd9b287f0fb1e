"""Transfer datasets: every loader on a tiny archive in the dataset's real on-disk format, served over HTTP on
127.0.0.1 (good, truncated and corrupt copies), verified, extracted atomically and loaded; plus VOC07 mAP and
SimCLR's ImageNet subset lists."""

import dataclasses
import hashlib
import io
import json
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from sempos.data import archives, catalog, download, images, imagenet_subsets as ins
from sempos.data.loaders import aircraft, caltech101, dtd, stl10, voc
from sempos.errors import DatasetError
from sempos.eval.transfer_metrics import transfer_score, voc07_11point_ap, voc07_11point_map

SIZE = 8
FILES: dict[str, bytes] = {}  # URL path -> body, filled by each test's archive builder


@pytest.fixture(scope="module")
def server(file_server):
    file_server.files = FILES
    return file_server.url


# --- builders of tiny archives in each dataset's real format ------------------------------------------------------


def jpeg(seed: int, w: int = 12, h: int = 9) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def tar(members: dict, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def mat(**arrays) -> bytes:
    sio = pytest.importorskip("scipy.io")
    buf = io.BytesIO()
    sio.savemat(buf, arrays)
    return buf.getvalue()


def lines(rows) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def _cifar_batch(n, seed, key, classes):
    rng = np.random.default_rng(seed)
    return pickle.dumps({"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                         key: [int(v) for v in rng.integers(0, classes, n)]})


def build_cifar10():
    root = "cifar-10-batches-py/"
    m = {root + f"data_batch_{i}": _cifar_batch(2, i, "labels", 10) for i in range(1, 6)}
    m[root + "test_batch"] = _cifar_batch(3, 9, "labels", 10)
    m[root + "batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    return {"cifar-10-python.tar.gz": tar(m)}, (10, 3, 10)


def build_cifar100():
    root = "cifar-100-python/"
    m = {root + "train": _cifar_batch(6, 1, "fine_labels", 100), root + "test": _cifar_batch(4, 2, "fine_labels", 100),
         root + "meta": pickle.dumps({"fine_label_names": [f"f{i}" for i in range(100)]})}
    return {"cifar-100-python.tar.gz": tar(m)}, (6, 4, 100)


def build_stl10():
    rng = np.random.default_rng(0)
    root = "stl10_binary/"
    m = {root + "train_X.bin": rng.integers(0, 255, 4 * 3 * 96 * 96, dtype=np.uint8).tobytes(),
         root + "train_y.bin": bytes([1, 2, 10, 3]),
         root + "test_X.bin": rng.integers(0, 255, 2 * 3 * 96 * 96, dtype=np.uint8).tobytes(),
         root + "test_y.bin": bytes([5, 6]),
         root + "unlabeled_X.bin": b"\0" * 100,
         root + "class_names.txt": lines([f"s{i}" for i in range(10)])}
    return {"stl10_binary.tar.gz": tar(m)}, (4, 2, 10)


def build_food101():
    train = {"apple_pie": ["apple_pie/1", "apple_pie/2"], "baklava": ["baklava/3"]}
    test = {"apple_pie": ["apple_pie/4"], "baklava": ["baklava/5"]}
    m = {"food-101/meta/train.json": json.dumps(train).encode(), "food-101/meta/test.json": json.dumps(test).encode()}
    for i, rel in enumerate(r for d in (train, test) for rels in d.values() for r in rels):
        m[f"food-101/images/{rel}.jpg"] = jpeg(i, 20, 14)
    return {"food-101.tar.gz": tar(m)}, (3, 2, 2)


def build_flowers102():
    n = 7
    imgs = tar({f"jpg/image_{i:05d}.jpg": jpeg(i) for i in range(1, n + 1)})
    labels = np.array([[1, 2, 1, 2, 3, 3, 1]], dtype=np.uint8)
    setid = {"trnid": np.array([[1, 2]]), "valid": np.array([[5]]), "tstid": np.array([[3, 4, 6, 7]])}
    return {"102flowers.tgz": imgs, "imagelabels.mat": mat(labels=labels), "setid.mat": mat(**setid)}, (3, 4, 3)


def build_pets():
    ids = ["Abyssinian_1", "american_bulldog_2", "Abyssinian_3", "american_bulldog_4", "Abyssinian_5"]
    images = tar({f"images/{i}.jpg": jpeg(n) for n, i in enumerate(ids)})
    ann = tar({"annotations/trainval.txt": lines(["Abyssinian_1 1 1 1", "american_bulldog_2 2 2 1",
                                                  "Abyssinian_3 1 1 1"]),
               "annotations/test.txt": lines(["american_bulldog_4 2 2 1", "Abyssinian_5 1 1 1"])})
    return {"images.tar.gz": images, "annotations.tar.gz": ann}, (3, 2, 2)


def build_dtd():
    rels = {"train1": ["banded/banded_0001.jpg"], "val1": ["zigzagged/zigzagged_0002.jpg"],
            "test1": ["banded/banded_0003.jpg", "zigzagged/zigzagged_0004.jpg"]}
    m = {f"dtd/labels/{k}.txt": lines(v) for k, v in rels.items()}
    for n, rel in enumerate(r for v in rels.values() for r in v):
        m[f"dtd/images/{rel}"] = jpeg(n)
    return {"dtd-r1.0.1.tar.gz": tar(m)}, (2, 2, 2)


def build_caltech101():
    inner = tar({f"101_ObjectCategories/{c}/image_{i:04d}.jpg": jpeg(10 * k + i)
                 for k, c in enumerate(["BACKGROUND_Google", "accordion", "airplanes"]) for i in range(1, 4)})
    z = zipped({"caltech-101/101_ObjectCategories.tar.gz": inner, "caltech-101/Annotations.tar": tar({}, "w"),
                "caltech-101/show_annotation.m": b"% matlab"})
    return {"caltech-101.zip": z}, (6, 3, 3)  # loaded with train_per_class=2


def build_aircraft():
    root = "fgvc-aircraft-2013b/data/"
    m = {root + "variants.txt": lines(["707-320", "A300B4", "Boeing 717"]),
         root + "images_variant_trainval.txt": lines(["1025794 707-320", "1340192 Boeing 717"]),
         root + "images_variant_train.txt": lines(["1025794 707-320"]),
         root + "images_variant_val.txt": lines(["1340192 Boeing 717"]),
         root + "images_variant_test.txt": lines(["0056978 A300B4"])}
    for n, i in enumerate(["1025794", "1340192", "0056978"]):
        m[root + f"images/{i}.jpg"] = jpeg(n, 16, 12)
    return {"fgvc-aircraft-2013b.tar.gz": tar(m)}, (2, 1, 3)


def _annos(rows):
    dt = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    return np.array([(1, 1, 5, 5, c, f) for c, f in rows], dtype=dt)


def build_cars():
    names = np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"], dtype=object)
    devkit = tar({"devkit/cars_meta.mat": mat(class_names=names),
                  "devkit/cars_train_annos.mat": mat(annotations=_annos([(1, "00001.jpg"), (3, "00002.jpg")])),
                  "devkit/cars_test_annos.mat": mat(annotations=_annos([(0, "00001.jpg")]))})
    return {"car_devkit.tgz": devkit,
            "cars_train.tgz": tar({"cars_train/00001.jpg": jpeg(1), "cars_train/00002.jpg": jpeg(2)}),
            "cars_test.tgz": tar({"cars_test/00001.jpg": jpeg(3)}),
            "cars_test_annos_withlabels.mat": mat(annotations=_annos([(2, "00001.jpg")]))}, (2, 1, 3)


def _voc(split, ids, flags):
    root = "VOCdevkit/VOC2007/"
    m = {root + f"ImageSets/Main/{split}.txt": lines(ids)}
    if split == "trainval":  # the devkit's train/val halves of trainval
        m[root + "ImageSets/Main/train.txt"], m[root + "ImageSets/Main/val.txt"] = lines(ids[:1]), lines(ids[1:])
    for c, name in enumerate(voc.CLASSES):
        m[root + f"ImageSets/Main/{name}_{split}.txt"] = lines(f"{i} {flags.get((i, c), -1):>2}" for i in ids)
    for n, i in enumerate(ids):
        m[root + f"JPEGImages/{i}.jpg"] = jpeg(n, 15, 10)
    return tar(m, "w")  # the VOC archives are plain (uncompressed) tars


VOC_FLAGS = {("000005", 8): 1, ("000007", 6): 1, ("000007", 14): 0, ("000001", 11): 1, ("000001", 14): 1}


def build_voc2007():
    return {"VOCtrainval_06-Nov-2007.tar": _voc("trainval", ["000005", "000007"], VOC_FLAGS),
            "VOCtest_06-Nov-2007.tar": _voc("test", ["000001"], VOC_FLAGS)}, (2, 1, 20)


BUILDERS = {"cifar10": build_cifar10, "cifar100": build_cifar100, "stl10": build_stl10, "food101": build_food101,
            "flowers102": build_flowers102, "pets": build_pets, "dtd": build_dtd, "caltech101": build_caltech101,
            "aircraft": build_aircraft, "cars": build_cars, "voc2007": build_voc2007}
LOADER_KW = {"caltech101": {"train_per_class": 2}}
NEEDS_SCIPY = {"flowers102", "cars"}


def serve(name, server, files, bad_mirrors=("truncated", "corrupt")):
    """Put each file on the server (plus bad copies) and return the dataset's spec pointing there."""
    real = catalog.get(name)
    assert {f.name for f in real.files} == set(files), "the tiny archive must supply every registered file"
    entries = []
    for f in real.files:
        body = files[f.name]
        FILES[f"/{name}/good/{f.name}"] = body
        FILES[f"/{name}/truncated/{f.name}"] = body[: len(body) // 2]
        FILES[f"/{name}/corrupt/{f.name}"] = body[:10] + bytes(reversed(body[10:]))
        urls = tuple(f"{server}/{name}/{m}/{f.name}" for m in (*bad_mirrors, "good"))
        entries.append(dataclasses.replace(f, urls=urls, md5=(hashlib.md5(body).hexdigest(),), sha256=()))
    return dataclasses.replace(real, files=tuple(entries))


def partials(root):
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith(".partial") or p.name.endswith(".part"))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_loader_fetches_verifies_extracts_and_loads(name, server, tmp_path, monkeypatch):
    if name in NEEDS_SCIPY:
        pytest.importorskip("scipy.io")
    files, (n_train, n_test, n_classes) = BUILDERS[name]()
    spec = serve(name, server, files)
    monkeypatch.setitem(catalog.CATALOG, name, spec)  # the real loader, with checksums of the tiny files
    download.fetch_dataset(name, tmp_path)
    raw = tmp_path / name
    arrays = spec.loader(raw, size=SIZE, **LOADER_KW.get(name, {}))
    assert arrays.train_x.dtype == np.uint8 and arrays.train_x.shape == (n_train, 3, SIZE, SIZE)
    assert arrays.test_x.shape == (n_test, 3, SIZE, SIZE)
    assert arrays.train_y.dtype == np.int64 and len(arrays.classes) == n_classes
    if name == "voc2007":
        assert arrays.train_y.shape == (2, 20) and set(np.unique(arrays.train_y)) <= {-1, 0, 1}
        assert arrays.train_y[0, 8] == 1 and arrays.train_y[1, 6] == 1 and arrays.train_y[1, 14] == -1
        assert arrays.test_y[0].tolist() == [1 if c in (11, 14) else 0 for c in range(20)]
    else:
        assert arrays.train_y.min() >= 0 and arrays.train_y.max() < n_classes
    assert partials(tmp_path) == []
    # The download stage's output directory (tracked by DVC/Snakemake) is left exactly as download wrote it.
    assert sorted(p.name for p in raw.iterdir()) == sorted([*files, "MANIFEST.json"])
    # Every archive was extracted once, with its completion marker; a second load reuses it untouched.
    markers = list(archives.extraction_root(raw).glob(f"*/{archives.MARKER}"))
    assert markers and all(json.loads(m.read_text())["sha256"] for m in markers)
    monkeypatch.setattr(archives, "_unpack", lambda *a: pytest.fail("re-extracted a complete extraction"))
    again = spec.loader(raw, size=SIZE, **LOADER_KW.get(name, {}))
    assert np.array_equal(again.train_x, arrays.train_x) and np.array_equal(again.test_y, arrays.test_y)


def test_known_content_is_read_correctly(server, tmp_path, monkeypatch):
    """Pixels and labels survive the trip: CIFAR at native size is exact; STL-10's column-major planes are
    transposed; 1-based labels (STL-10, Flowers, Pets, Cars) become 0-based; STL-10's unlabeled split is skipped."""
    files, _ = build_cifar10()
    monkeypatch.setitem(catalog.CATALOG, "cifar10", serve("cifar10", server, files, bad_mirrors=()))
    download.fetch_dataset("cifar10", tmp_path)
    a = catalog.load_transfer("cifar10", tmp_path / "cifar10")  # default size: 32, no resampling
    batch = pickle.loads(tarfile.open(fileobj=io.BytesIO(files["cifar-10-python.tar.gz"]))
                         .extractfile("cifar-10-batches-py/data_batch_1").read())
    assert np.array_equal(a.train_x[:2], batch["data"].reshape(2, 3, 32, 32))
    assert a.train_y[:2].tolist() == batch["labels"] and a.classes[3] == "c3"

    files, _ = build_stl10()
    monkeypatch.setitem(catalog.CATALOG, "stl10", serve("stl10", server, files, bad_mirrors=()))
    download.fetch_dataset("stl10", tmp_path)
    s = stl10.load(tmp_path / "stl10", size=96)
    raw_x = tarfile.open(fileobj=io.BytesIO(files["stl10_binary.tar.gz"])).extractfile("stl10_binary/train_X.bin")
    planes = np.frombuffer(raw_x.read(), np.uint8).reshape(4, 3, 96, 96)
    assert np.array_equal(s.train_x, planes.transpose(0, 1, 3, 2)) and s.train_y.tolist() == [0, 1, 9, 2]
    assert not list(tmp_path.rglob("unlabeled_X.bin")) and list(tmp_path.rglob("train_X.bin"))


def test_all_bad_mirrors_report_and_keep_nothing(server, tmp_path, monkeypatch):
    files, _ = build_dtd()
    spec = serve("dtd", server, files)
    bad = dataclasses.replace(spec.files[0], urls=spec.files[0].urls[:2])  # truncated and corrupt only
    monkeypatch.setitem(catalog.CATALOG, "dtd", dataclasses.replace(spec, files=(bad,)))
    with pytest.raises(DatasetError, match="checksum mismatch") as err:
        download.fetch_dataset("dtd", tmp_path)
    assert "Fix:" in str(err.value)
    assert not (tmp_path / "dtd" / "dtd-r1.0.1.tar.gz").exists() and not (tmp_path / "dtd" / "MANIFEST.json").exists()
    assert partials(tmp_path) == []


def _with_manifest(raw, name, body):
    raw.mkdir(parents=True, exist_ok=True)
    (raw / name).write_bytes(body)
    (raw / "MANIFEST.json").write_text(json.dumps({"sha256": {name: hashlib.sha256(body).hexdigest()}}))


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_corrupt_archive_is_reported_and_nothing_partial_is_left(tmp_path, damage):
    """An archive that passes its recorded checksum but does not unpack (e.g. a wrong user-supplied checksum)."""
    body = build_dtd()[0]["dtd-r1.0.1.tar.gz"]
    body = body[: len(body) * 2 // 3] if damage == "truncated" else body[:10] + bytes(reversed(body[10:]))
    raw = tmp_path / "dtd"
    _with_manifest(raw, "dtd-r1.0.1.tar.gz", body)
    with pytest.raises(DatasetError, match="corrupt or truncated") as err:
        dtd.load(raw, size=SIZE)
    assert "Nothing was extracted" in str(err.value) and "rerun the download stage" in str(err.value)
    assert not (archives.extraction_root(raw) / "dtd-r1.0.1").exists()
    assert partials(tmp_path) == []


def test_corrupt_zip_member_is_reported(tmp_path):
    body = bytearray(build_caltech101()[0]["caltech-101.zip"])
    mid = body.find(b"caltech-101/101_ObjectCategories.tar.gz") + 200  # inside the first member's data
    body[mid:mid + 16] = bytes(16)
    raw = tmp_path / "caltech101"
    _with_manifest(raw, "caltech-101.zip", bytes(body))
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        caltech101.load(raw, size=SIZE, train_per_class=2)
    assert not (archives.extraction_root(raw) / "caltech-101").exists() and partials(tmp_path) == []


def test_archive_changed_after_download_is_refused(tmp_path):
    body = build_dtd()[0]["dtd-r1.0.1.tar.gz"]
    raw = tmp_path / "dtd"
    _with_manifest(raw, "dtd-r1.0.1.tar.gz", body)
    (raw / "dtd-r1.0.1.tar.gz").write_bytes(body[:-1])
    with pytest.raises(DatasetError, match="changed after it was downloaded"):
        dtd.load(raw, size=SIZE)
    (raw / "MANIFEST.json").unlink()
    with pytest.raises(DatasetError, match="run the download stage"):
        dtd.load(raw, size=SIZE)


def test_interrupted_or_stale_extraction_never_looks_complete(tmp_path, monkeypatch):
    body = build_dtd()[0]["dtd-r1.0.1.tar.gz"]
    raw = tmp_path / "dtd"
    _with_manifest(raw, "dtd-r1.0.1.tar.gz", body)
    dest = archives.extraction_root(raw) / "dtd-r1.0.1"
    real_unpack = archives._unpack

    def killed(archive, into, skip):
        real_unpack(archive, into, skip)  # every file is written, then the process "dies" before the marker
        raise KeyboardInterrupt

    monkeypatch.setattr(archives, "_unpack", killed)
    with pytest.raises(KeyboardInterrupt):
        dtd.load(raw, size=SIZE)
    assert not dest.exists() and partials(tmp_path) == []
    monkeypatch.setattr(archives, "_unpack", real_unpack)
    # A directory without the marker (an older, incomplete extraction) is replaced, not trusted.
    (dest / "dtd").mkdir(parents=True)
    (dest / "dtd" / "junk").write_text("half")
    assert len(dtd.load(raw, size=SIZE).train_y) == 2
    assert not (dest / "dtd" / "junk").exists() and (dest / archives.MARKER).is_file()
    # A killed run's hidden partial directory is cleaned by the next extraction.
    stale = dest.parent / ".dtd-r1.0.1.abc.partial"
    stale.mkdir()
    (dest / archives.MARKER).unlink()
    dtd.load(raw, size=SIZE)
    assert not stale.exists()


def test_unsafe_member_paths_are_refused(tmp_path):
    for name, body in (("evil.tar.gz", tar({"ok.txt": b"1", "../escape.txt": b"2"})),
                       ("evil.zip", zipped({"ok.txt": b"1", "../escape.txt": b"2"}))):
        archive = tmp_path / name
        archive.write_bytes(body)
        with pytest.raises(DatasetError, match="unsafe member"):
            archives.extract_archive(archive, tmp_path / "out" / name)
        assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / name).exists()
    assert partials(tmp_path) == []


def test_resize_modes(tmp_path):
    from PIL import Image

    img = np.zeros((10, 30, 3), np.uint8)
    img[:, 10:20] = 255  # a white centre square in a black 30x10 image
    Image.fromarray(img).save(tmp_path / "a.png")
    crop = images.load_images([tmp_path / "a.png"], 4, "center_crop")
    stretch = images.load_images([tmp_path / "a.png"], 4, "stretch")
    assert crop.shape == (1, 3, 4, 4) and crop.min() > 200  # only the centre square survives
    assert stretch[0, :, :, 0].max() < 60  # the black left edge survives
    with pytest.raises(DatasetError, match="resize mode"):
        images.load_images([tmp_path / "a.png"], 4, "squash")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode"):
        images.load_images([tmp_path / "bad.jpg"], 4)


def test_registry_metrics_checksums_and_urls():
    per_class = {"aircraft", "pets", "caltech101", "flowers102"}
    for name in catalog.TRANSFER_SETS:
        spec = catalog.get(name)
        assert catalog.metric_of(name) == ("mean_per_class" if name in per_class else
                                      "voc07_map" if name == "voc2007" else "top1")
        assert spec.extras["transfer"] and spec.extras["split"] and spec.extras["image_size"] in (32, 64)
        for f in spec.files:
            if name == "aircraft" and not f.sha256:
                assert f.urls == ()  # nothing is downloaded until a checksum is supplied
                continue
            assert all(len(m) == 32 for m in f.md5) and (f.md5 or f.sha256), f"{name}/{f.name} has no checksum"
            assert f.urls and all(u.startswith(("http://", "https://")) for u in f.urls)
    assert catalog.get("voc2007").extras["multilabel"] is True
    assert set(catalog.MINIMUM_SUBSET) <= set(catalog.TRANSFER_SETS)
    assert catalog.metric_of("digits") == "top1"  # unflagged datasets report top-1
    with pytest.raises(DatasetError, match="not a transfer dataset"):
        catalog.load_transfer("digits", "unused")


def test_aircraft_needs_a_user_supplied_checksum(tmp_path, monkeypatch):
    f = aircraft.aircraft_file(None)
    assert f.urls == () and not f.md5 and not f.sha256
    monkeypatch.setitem(catalog.CATALOG, "aircraft",
                        dataclasses.replace(catalog.get("aircraft"), files=(f,)))
    with pytest.raises(DatasetError, match=aircraft.SHA256_ENV):
        download.fetch_dataset("aircraft", tmp_path)
    sha = "AB" * 32
    g = aircraft.aircraft_file(sha)
    assert g.sha256 == (sha.lower(),) and g.urls == (aircraft.URL,)
    with pytest.raises(DatasetError, match="not a sha256"):
        aircraft.aircraft_file("1234")


# --- metrics ------------------------------------------------------------------------------------------------------


def test_voc07_11point_map_hand_computed():
    scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.9, 0.2], [0.7, 0.5, 0.1], [0.6, 0.3, 0.4]])
    targets = np.array([[1, 1, 0], [0, -1, 0], [1, 0, 0], [0, 1, 0]])
    # Class 0, ranked: TP FP TP FP -> (recall, precision) = (.5, 1), (.5, .5), (1, 2/3), (1, .5):
    #   t = 0 .. 0.5 -> 1; t = 0.6 .. 1 -> 2/3; AP = (6 + 5 * 2/3) / 11.
    # Class 1, the difficult image (-1) is dropped; ranked 0.5 FP, 0.3 TP, 0.1 TP -> precision 0, 1/2, 2/3 at
    #   recall 0, .5, 1: every threshold reaches 2/3; AP = 2/3.
    # Class 2 has no positive image: skipped.
    ap0, ap1 = (6 + 5 * 2 / 3) / 11, 2 / 3
    assert voc07_11point_ap(scores[:, 0], targets[:, 0]) == pytest.approx(ap0)
    assert voc07_11point_ap(scores[:, 1], targets[:, 1]) == pytest.approx(ap1)
    assert voc07_11point_map(scores, targets) == pytest.approx(100 * (ap0 + ap1) / 2)
    assert voc07_11point_map(scores[:, :1], np.array([[1], [1], [0], [0]])) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no class has a positive"):
        voc07_11point_map(scores[:, 2:], targets[:, 2:])
    with pytest.raises(ValueError, match="1 \\(positive\\)"):
        voc07_11point_map(scores, targets + 1)
    assert transfer_score("voc07_map", targets, scores) == pytest.approx(100 * (ap0 + ap1) / 2)


def test_transfer_score_top1_and_mean_per_class():
    y = np.array([0, 0, 0, 1])
    scores = np.eye(2)[[0, 0, 0, 0]]  # always predicts class 0
    assert transfer_score("top1", y, scores) == pytest.approx(75.0)
    assert transfer_score("mean_per_class", y, scores) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="unknown transfer metric"):
        transfer_score("map50", y, scores)


# --- SimCLR's ImageNet subset lists ---------------------------------------------------------------------------------


def fake_list(n, seed=0):
    rng = np.random.default_rng(seed)
    wnids = [f"n{c:08d}" for c in rng.integers(1_000_000, 9_999_999, 50)]
    return [f"{wnids[i % 50]}_{i}.JPEG" for i in range(n)]


def test_subset_list_parsing_validates_count_format_and_duplicates():
    names = fake_list(ins.EXPECTED_LINES[1])
    assert ins.parse_subset_list("\n".join(names) + "\n", 1) == names
    with pytest.raises(DatasetError, match="expected 12811"):
        ins.parse_subset_list("\n".join(names[:-1]), 1)
    with pytest.raises(DatasetError, match="malformed"):
        ins.parse_subset_list("\n".join(names[:-1] + ["cat.jpg"]), 1)
    with pytest.raises(DatasetError, match="repeats"):
        ins.parse_subset_list("\n".join(names[:-1] + names[:1]), 1)
    with pytest.raises(DatasetError, match="1% and 10%"):
        ins.parse_subset_list("", 5)
    assert ins.EXPECTED_LINES == {1: 12_811, 10: 128_116}
    assert all(len(f.sha256[0]) == 64 and f.urls for f in ins.SUBSET_FILES.values())


def test_subset_maps_to_train_list_indices():
    train = [f"/data/imagenet/train/{n.split('_')[0]}/{n}" for n in fake_list(40)]
    subset = [train[i].rsplit("/", 1)[1] for i in (31, 2, 17)]
    assert ins.subset_indices(subset, train).tolist() == [2, 17, 31]
    with pytest.raises(DatasetError, match="not in the ImageNet train list"):
        ins.subset_indices(subset + ["n00000001_1.JPEG"], train)
    wrong = train[:1] + ["/x/n99999999/" + train[1].rsplit("/", 1)[1]]
    with pytest.raises(DatasetError, match="filed under class"):
        ins.subset_indices(subset, wrong)


def test_subset_list_download_is_verified(server, tmp_path, monkeypatch):
    body = ("\n".join(fake_list(ins.EXPECTED_LINES[1])) + "\n").encode()
    FILES["/simclr/good/1percent.txt"] = body
    FILES["/simclr/truncated/1percent.txt"] = body[:1000]
    f = dataclasses.replace(ins.SUBSET_FILES[1], urls=(f"{server}/simclr/truncated/1percent.txt",
                                                      f"{server}/simclr/good/1percent.txt"),
                            sha256=(hashlib.sha256(body).hexdigest(),))
    monkeypatch.setitem(ins.SUBSET_FILES, 1, f)
    train = [f"{n.split('_')[0]}/{n}" for n in fake_list(ins.EXPECTED_LINES[1] + 5, seed=0)]
    idx = ins.load_subset(1, tmp_path, train)
    assert len(idx) == ins.EXPECTED_LINES[1] and (tmp_path / "1percent.txt").read_bytes() == body
    monkeypatch.setitem(ins.SUBSET_FILES, 1, dataclasses.replace(f, sha256=("0" * 64,)))
    with pytest.raises(DatasetError, match="not SimCLR's 1% list"):
        ins.read_subset_list(tmp_path / "1percent.txt", 1)
