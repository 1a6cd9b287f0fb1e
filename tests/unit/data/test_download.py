"""Downloads: verified by checksum, corrupt/truncated copies refetched or reported, nothing partial kept.

Served by a local HTTP server on 127.0.0.1 (good, truncated and corrupt files)."""

import gzip
import hashlib
from pathlib import Path

import pytest

from sempos.data import download
from sempos.data.spec import Arrays, DatasetSpec, RemoteFile
from sempos.errors import DatasetError

PAYLOAD = gzip.compress(b"sempos test payload " * 200, mtime=0)
MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture(scope="module")
def server(file_server):
    file_server.files.update({"/good.gz": PAYLOAD, "/truncated.gz": PAYLOAD[: len(PAYLOAD) // 2],
                              "/corrupt.gz": bytes(reversed(PAYLOAD))})
    return file_server.url


def _spec(urls, local_dirs=()):
    f = RemoteFile(name="data.gz", urls=tuple(urls), md5=(MD5,))
    return DatasetSpec(name="tiny", description="test", files=(f,), loader=lambda p: Arrays(None, None, None, None, ()),
                       local_dirs=tuple(local_dirs), local_hint="install the tiny package"), f


def _no_partials(d: Path):
    return [p.name for p in d.iterdir() if p.name.endswith(".part")]


def test_good_download_is_verified(server, tmp_path):
    spec, f = _spec([f"{server}/good.gz"])
    path = download.fetch_file(spec, f, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert _no_partials(tmp_path) == []


@pytest.mark.parametrize("bad", ["truncated.gz", "corrupt.gz", "missing.gz"])
def test_bad_mirror_falls_through_to_good_one(server, tmp_path, bad):
    spec, f = _spec([f"{server}/{bad}", f"{server}/good.gz"])
    path = download.fetch_file(spec, f, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert _no_partials(tmp_path) == []


def test_all_sources_bad_reports_and_keeps_nothing(server, tmp_path):
    spec, f = _spec([f"{server}/truncated.gz", f"{server}/corrupt.gz"])
    with pytest.raises(DatasetError) as err:
        download.fetch_file(spec, f, tmp_path)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "install the tiny package" in msg and "Fix:" in msg
    assert not (tmp_path / "data.gz").exists()
    assert _no_partials(tmp_path) == []


def test_corrupt_existing_file_is_refetched(server, tmp_path):
    (tmp_path / "data.gz").write_bytes(PAYLOAD[:10])
    spec, f = _spec([f"{server}/good.gz"])
    assert download.fetch_file(spec, f, tmp_path).read_bytes() == PAYLOAD


def test_local_copy_preferred_and_checked_by_content(tmp_path):
    # A re-compressed local copy: different bytes, same content (as Debian's Fashion-MNIST).
    content = b"same content " * 50
    official = gzip.compress(content, mtime=0, compresslevel=9)
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    (local_dir / "data.gz").write_bytes(gzip.compress(content, mtime=123, compresslevel=1))
    f = RemoteFile(name="data.gz", urls=(), md5=(hashlib.md5(official).hexdigest(),),
                   content_sha256=(hashlib.sha256(content).hexdigest(),))
    spec = DatasetSpec("tiny", "t", (f,), loader=None, local_dirs=(local_dir,))
    out = tmp_path / "raw"
    out.mkdir()
    assert gzip.decompress(download.fetch_file(spec, f, out).read_bytes()) == content


def test_fmnist_catalog_entry_accepts_debian_copy_when_present(tmp_path):
    src = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    if not src.exists():
        pytest.skip("dataset-fashion-mnist not installed")
    from sempos.data.catalog import get

    spec = get("fmnist")
    f = next(x for x in spec.files if x.name == src.name)
    assert f.verify(src)
    truncated = tmp_path / src.name
    truncated.write_bytes(src.read_bytes()[:-100])
    assert not f.verify(truncated)
