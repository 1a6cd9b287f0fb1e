"""bench/loader.py: its baseline is the two-view ImageFolder + PIL recipe, and the CLI writes the side-by-side CSV."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def test_folder_baseline_gives_two_different_normalised_views():
    from PIL import Image

    import loader as bench

    t = bench.folder_transform(full=True)
    img = Image.new("RGB", (500, 375), (120, 30, 200))
    torch.manual_seed(0)
    v1, v2 = t(img)
    assert v1.shape == v2.shape == (3, 224, 224) and v1.dtype == torch.float32


@pytest.mark.slow
def test_cli_writes_every_loader_side_by_side_and_the_feed_rows(tmp_path):
    # --feed runs the --device cuda rows' code path (the loader feeding the trainer vs synthetic data) on the
    # CPU with a tiny model: the GPU numbers themselves need a GPU.
    out = tmp_path / "loader.csv"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "loader.py"), "--data", str(tmp_path / "jpeg"),
                        "--images", "40", "--pairs", "16", "--batch", "8", "--workers", "1", "--feed",
                        "--arch", "resnet18_cifar", "--width", "4", "--crop", "32", "--steps", "3", "--warmup", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [x["loader"].split(" ->")[0] for x in rows] == ["sempos crops", "sempos full", "folder crops",
                                                            "folder full", "sempos decode=device",
                                                            "sempos decode=cpu"]
    assert all(float(x["pairs_s"]) > 0 and float(x["pairs_cpu_s"]) > 0 for x in rows[:4])
    assert all(float(x["real_pairs_s"]) > 0 and float(x["real_vs_synthetic"]) > 0 for x in rows[4:])
    assert len(list((tmp_path / "jpeg" / "train").rglob("*.jpg"))) == 40
