import http.server
import os
import sys
import threading
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("CI", "1")  # quiet progress bars
torch.set_num_threads(2)


def fake_prepared(n_train: int = 256, n_test: int = 64, classes: int = 4, size: int = 28, seed: int = 0) -> dict:
    """A prepared-dataset payload (as data/prepare.py writes) of class-dependent blobs."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, classes, (n_train + n_test,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    imgs = []
    for y in ys.tolist():
        cy, cx = 6 + 5 * (y // 2), 6 + 12 * (y % 2)
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
        noise = torch.rand(size, size, generator=g) * 0.3
        imgs.append(((blob + noise).clamp(0, 1) * 255).to(torch.uint8))
    x = torch.stack(imgs)[:, None]
    train = torch.arange(n_train)
    return {
        "name": "fake", "classes": [str(c) for c in range(classes)],
        "train_x": x[:n_train], "train_y": ys[:n_train], "test_x": x[n_train:], "test_y": ys[n_train:],
        "splits": {"train": train[: n_train - 32], "val": train[n_train - 32:], "pretrain": train[: n_train - 32],
                   "semi": {}},
    }


@pytest.fixture
def prepared():
    return fake_prepared()


CUDA_TESTS_ON_CPU = "SEMPOS_CUDA_TESTS_ON_CPU"


@pytest.fixture
def cuda_device() -> torch.device:
    """The device of a test marked `cuda`: the GPU, or a skip without one.

    With SEMPOS_CUDA_TESTS_ON_CPU=1 the same tests run on the CPU (CPU bf16 autocast for the precision
    checks), so they cannot rot between GPU windows (bench/gpu_check.py --cpu --tiny sets it).
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(CUDA_TESTS_ON_CPU) == "1":
        return torch.device("cpu")
    pytest.skip("needs CUDA")


def tiny_settings(algo: str = "simclr", epochs: int = 2, **hp) -> dict:
    return {
        "name": f"tiny_{algo}", "algo": algo, "hp": {"algo": algo, **hp},
        "pretrain": {"epochs": epochs, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                     "weight_decay": 5e-4, "warmup_epochs": 0, "knn_monitor": 0},
        "augment": {"crop_scale": [0.2, 1.0], "flip_p": 0.5, "jitter_p": 0.8, "jitter": [0.4, 0.4, 0.4, 0.1],
                    "grayscale_p": 0.2, "blur_p": 0.0, "solarize_p": 0.0},
        "backbone": {"arch": "resnet18_cifar", "width": 4},
    }


def targz(members: dict) -> bytes:
    """A .tar.gz holding {member name: bytes}, built in memory (fake archives in official layouts)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def place_downloaded(raw_dir: Path, name: str, body: bytes) -> None:
    """Put a file in data/raw/<ds>/ with the MANIFEST the download stage writes after verifying it."""
    import hashlib
    import json

    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / name).write_bytes(body)
    (raw_dir / "MANIFEST.json").write_text(json.dumps({"sha256": {name: hashlib.sha256(body).hexdigest()}}))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op returns while active (memory tests: never N x N)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


class HostSyncs(TorchDispatchMode):
    """Records ops that copy a device value to the host (.item(), int(t), bool(t) all end here)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.seen.append(func)
        return func(*args, **(kwargs or {}))


class FileServer:
    """A local HTTP server on 127.0.0.1 serving `files` ({URL path: body}); 404 for anything else."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = srv.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def file_server():
    srv = FileServer()
    yield srv
    srv.close()
