"""Atomic writes respect the umask (group-readable outputs) and unreadable files are one clear error."""

import os
import stat

import pytest
import torch

from sempos.errors import InputError
from sempos.io import atomic_path, current_umask, load_torch, save_json, save_torch


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_mode_the_umask_allows(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    save_json({"a": 1}, tmp_path / "m.json")
    save_torch({"t": torch.zeros(2)}, tmp_path / "t.pt")
    for f in ("m.json", "t.pt"):
        assert stat.S_IMODE((tmp_path / f).stat().st_mode) == mode, f


def test_nothing_partial_is_left_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_truncated_or_missing_torch_files_are_one_line(tmp_path):
    save_torch({"w": torch.arange(1000.0)}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut.pt cannot be read .*corrupt or truncated; delete it") as err:
        load_torch(tmp_path / "cut.pt")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="gone.pt not found"):
        load_torch(tmp_path / "gone.pt")


def test_the_same_tensors_give_the_same_bytes(tmp_path):
    obj = {"meta": {"a": 1}, "state_dict": {"w": torch.arange(10.0)}}
    save_torch(obj, tmp_path / "a.pt")
    save_torch(obj, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(load_torch(tmp_path / "a.pt")["state_dict"]["w"], obj["state_dict"]["w"])
