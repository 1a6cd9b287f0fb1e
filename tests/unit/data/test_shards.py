"""Pack once: shards hold the images' bytes at the recorded offsets, a rerun reuses verified shards and
rewrites corrupt ones, the result does not depend on the worker count, odd files are normalised, and a
corrupt shard or an undecodable image is reported by name with the fix."""

import io
import logging

import numpy as np
import pytest
import torch
from conftest import digit_jpegs
from PIL import Image

from sempos.data import shards
from sempos.data.jpeg import decode_rgb, jpeg_frame
from sempos.data.pack import PackSettings, pack_split
from sempos.data.sources import SourceItem
from sempos.errors import DatasetError


def _items(tmp_path, n=10):
    src = tmp_path / "src"
    src.mkdir()
    items = []
    for k, (body, label) in enumerate(digit_jpegs(n, seed=3)):
        p = src / f"c{label}_{k}.jpg"
        p.write_bytes(body)
        items.append(SourceItem(f"c{label}/{p.name}", label, str(p)))
    return items


def test_shards_hold_the_original_bytes_at_the_recorded_offsets(tmp_path):
    items = _items(tmp_path)
    table, summary = pack_split(items, "train", tmp_path / "out", PackSettings(shard_images=4))
    assert summary == {"images": 10, "shards": 3, "bytes": sum(len(open(i.path, "rb").read()) for i in items),
                       "reencoded": 0, "reused": 0}
    assert table.files == ["train-00000.bin", "train-00001.bin", "train-00002.bin"]
    for row, it in enumerate(items):
        data = table.read(row)
        assert data == open(it.path, "rb").read()
        h, w = decode_rgb(data).shape[1:]
        assert (table.height[row], table.width[row]) == (h, w)
    assert table.names() == [it.name for it in items]
    assert table.verify() == []


def test_rerun_reuses_verified_shards_and_rewrites_a_corrupt_one(tmp_path, caplog):
    items = _items(tmp_path)
    out = tmp_path / "out"
    t1, _ = pack_split(items, "train", out, PackSettings(shard_images=4))
    good = (out / "train-00001.bin").read_bytes()
    t2, summary = pack_split(items, "train", out, PackSettings(shard_images=4))
    assert summary["reused"] == 3 and t2.sha256 == t1.sha256
    (out / "train-00001.bin").write_bytes(b"\0" * len(good))  # same size: only the sha256 tells
    assert t1.verify() == [str(out / "train-00001.bin")]
    with caplog.at_level(logging.WARNING):
        _, summary = pack_split(items, "train", out, PackSettings(shard_images=4))
    assert "train-00001.bin" in caplog.text and "sha256" in caplog.text
    assert summary["reused"] == 2 and (out / "train-00001.bin").read_bytes() == good


def test_a_killed_pack_leaves_nothing_partial_and_resumes(tmp_path, monkeypatch):
    from sempos.data import pack

    items = _items(tmp_path)
    out = tmp_path / "out"
    real = pack.pack_image
    seen = []

    def dies_in_shard_two(data, max_side, quality):
        seen.append(1)
        if len(seen) == 6:  # the 2nd image of the 2nd shard
            raise KeyboardInterrupt
        return real(data, max_side, quality)

    monkeypatch.setattr(pack, "pack_image", dies_in_shard_two)
    with pytest.raises(KeyboardInterrupt):
        pack_split(items, "train", out, PackSettings(shard_images=4))
    assert sorted(p.name for p in out.iterdir()) == ["train-00000.bin", "train-00000.json"]
    monkeypatch.setattr(pack, "pack_image", real)
    _, summary = pack_split(items, "train", out, PackSettings(shard_images=4))
    assert summary["reused"] == 1 and summary["shards"] == 3


def test_shards_do_not_depend_on_the_number_of_workers(tmp_path):
    items = _items(tmp_path, n=12)
    a, _ = pack_split(items, "train", tmp_path / "a", PackSettings(max_side=24, shard_images=3), workers=0)
    b, _ = pack_split(items, "train", tmp_path / "b", PackSettings(max_side=24, shard_images=3), workers=2)  # a pool
    assert a.sha256 == b.sha256 and np.array_equal(a.offset, b.offset) and np.array_equal(a.height, b.height)


def test_odd_files_are_reencoded_to_baseline_rgb_and_large_ones_capped(tmp_path):
    rgb = Image.fromarray((np.random.default_rng(0).random((50, 80, 3)) * 255).astype(np.uint8))
    bodies = {}
    for name, kw in {"png.JPEG": dict(format="PNG"), "cmyk.JPEG": dict(format="JPEG"),
                     "prog.JPEG": dict(format="JPEG", progressive=True), "gray.JPEG": dict(format="JPEG"),
                     "big.JPEG": dict(format="JPEG"), "fine.JPEG": dict(format="JPEG")}.items():
        img = rgb.convert("CMYK") if name.startswith("cmyk") else rgb.convert("L") if name.startswith("gray") else rgb
        if name.startswith("big"):
            img = rgb.resize((160, 100))
        buf = io.BytesIO()
        img.save(buf, **kw)
        bodies[name] = buf.getvalue()
        (tmp_path / name).write_bytes(bodies[name])
    items = [SourceItem(n, 0, str(tmp_path / n)) for n in bodies]
    table, summary = pack_split(items, "train", tmp_path / "out", PackSettings(max_side=60))
    assert summary["reencoded"] == 5
    for row, name in enumerate(bodies):
        data = table.read(row)
        assert jpeg_frame(data) == (0xC0, 3), name  # baseline, three components
        if name == "fine.JPEG":
            assert data == bodies[name]
    big = list(bodies).index("big.JPEG")
    assert (table.height[big], table.width[big]) == (60, 96)  # shorter side capped, aspect kept


def test_an_undecodable_image_stops_the_pack_naming_the_file(tmp_path):
    items = _items(tmp_path, n=4)
    with open(items[2].path, "r+b") as fh:
        fh.write(b"GIF89a not a jpeg at all")
    with pytest.raises(DatasetError, match=items[2].path.replace(".", r"\.") + ".*cannot be decoded.*Fix"):
        pack_split(items, "train", tmp_path / "out", PackSettings(shard_images=2))
    assert not (tmp_path / "out" / "train-00001.bin").exists()


def test_truncated_or_corrupt_shards_are_reported_with_the_fix(tmp_path):
    from sempos.data.loader import Task, run_task

    items = _items(tmp_path, n=6)
    table, _ = pack_split(items, "train", tmp_path / "out", PackSettings(shard_images=3))
    shard = tmp_path / "out" / "train-00001.bin"
    data = bytearray(shard.read_bytes())
    off = int(table.offset[4])
    data[off:off + 4] = b"\0\0\0\0"  # the SOI marker of image 4
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=f"{items[4].name}.*train-00001.bin.*corrupt.*pack stage"):
        run_task(table, Task(np.array([3, 4]), None, None, 16, 18))
    shard.write_bytes(bytes(data[:-10]))
    with pytest.raises(DatasetError, match="train-00001.bin holds .* bytes.*truncated.*pack stage"):
        table.check_files()


def test_verify_cli_names_corrupt_shards(tmp_path, capsys):
    from sempos.io import save_torch

    items = _items(tmp_path, n=4)
    table, _ = pack_split(items, "train", tmp_path / "shards" / "x", PackSettings(shard_images=2))
    save_torch({"shard_dir": "x", "splits": {"train": table.to_dict()}}, tmp_path / "shards" / "x.pt")
    assert shards.main(["verify", str(tmp_path / "shards" / "x.pt")]) == 0
    (tmp_path / "shards" / "x" / "train-00000.bin").write_bytes(b"junk")
    assert shards.main(["verify", str(tmp_path / "shards" / "x.pt")]) == 1
    assert "train-00000.bin" in capsys.readouterr().err


def test_table_round_trips_and_reopens_after_pickling(tmp_path):
    import pickle

    items = _items(tmp_path, n=3)
    table, _ = pack_split(items, "train", tmp_path / "out", PackSettings())
    table.read(0)
    again = pickle.loads(pickle.dumps(shards.ShardTable.from_dict(table.to_dict(), table.root)))
    assert again.read(2) == table.read(2) and again.names() == table.names()
    assert torch.equal(torch.as_tensor(again.width), torch.as_tensor(table.width))


def test_open_shard_descriptors_stay_bounded(tmp_path, monkeypatch):
    items = _items(tmp_path, n=8)
    table, _ = pack_split(items, "train", tmp_path / "out", PackSettings(shard_images=2))
    monkeypatch.setattr(shards, "MAX_OPEN", 2)
    for row in [0, 2, 4, 6, 1, 7, 3, 5]:
        assert table.read(row) == open(items[row].path, "rb").read()
        assert len(table._fds) <= 2
