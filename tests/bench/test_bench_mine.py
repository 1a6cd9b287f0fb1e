"""bench/mine.py: the timed per-block routine is the one blocked_topk runs, and the CLI writes its CSV."""

import csv
import subprocess
import sys
from pathlib import Path

import torch

from sempos.mining.topk import blocked_topk, check_rows, query_block_topk

ROOT = Path(__file__).resolve().parents[2]


def test_query_blocks_reassemble_blocked_topk():
    x = torch.randn(700, 12, generator=torch.Generator().manual_seed(0))
    s_ref, i_ref = blocked_topk(x, 5, block_q=128, block_k=90)
    inv = check_rows(x, 128, True)
    parts = [query_block_topk(x, inv, qs, min(200, 700 - qs), 5, 90, exclude_self=True) for qs in range(0, 700, 200)]
    s = torch.cat([p[0] for p in parts])
    i = torch.cat([p[1] for p in parts])
    assert torch.equal(i, i_ref)
    assert torch.allclose(s, s_ref)
    assert not (i == torch.arange(700)[:, None]).any()


def test_cli_labels_extrapolated_rows_as_estimates(tmp_path):
    out = tmp_path / "mine.csv"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "mine.py"), "--n", "20000", "--dims", "8", "16",
                        "--k", "3", "--queries", "300", "--max-keys", "4000", "--block-q", "128",
                        "--block-k", "1000", "--repeats", "1", "--device", "cpu", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [int(x["D"]) for x in rows] == [8, 16]
    for row in rows:
        assert row["kind"] == "estimate" and int(row["keys_measured"]) == 4000
        assert float(row["queries_per_s"]) > 0
        # the full-size time is N / (queries per second against N keys), up to the CSV's rounding:
        # qps is rounded to 0.05, which moves N / qps by up to N * 0.05 / qps^2, plus full_mine_s's own 0.005
        qps = float(row["queries_per_s"])
        assert abs(float(row["full_mine_s"]) - 20000 / qps) <= 20000 * 0.05 / (qps - 0.05) ** 2 + 0.005
