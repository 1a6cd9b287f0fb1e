"""Semantic Sampler: exact top-K, bounded memory, filters and precision on planted data."""

import hashlib

import torch
import torch.nn.functional as F
from conftest import LargestTensor

import pytest

from sempos.errors import ConfigError
from sempos.mining.sampler import SamplerConfig, diagnostics, pair_precision, read_pairs, spps_from_topk, write_pairs
from sempos.mining.topk import blocked_topk


def brute_force(emb, k):
    sim = emb @ emb.t()
    sim.fill_diagonal_(float("-inf"))
    return sim.topk(k, dim=1)


@pytest.mark.parametrize("n,d,k,bq,bk", [(97, 8, 5, 16, 32), (200, 16, 10, 64, 1000), (50, 4, 49, 7, 9)])
def test_blocked_topk_equals_brute_force(n, d, k, bq, bk):
    emb = F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(n)), dim=1)
    s, i = blocked_topk(emb, k, block_q=bq, block_k=bk)
    bs, bi = brute_force(emb, k)
    assert torch.allclose(s, bs, atol=1e-6)
    assert torch.equal(i, bi)  # random continuous data: no ties
    assert not (i == torch.arange(n).view(-1, 1)).any()


def test_blocked_mining_never_allocates_n_by_n():
    n, k, bq, bk = 3000, 5, 256, 512
    emb = F.normalize(torch.randn(n, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    with LargestTensor() as probe:
        blocked_topk(emb, k, block_q=bq, block_k=bk)
    bound = max(bq * bk, n * 32, n * k) * 2  # one block of similarities (+ top-k merge), or the inputs
    assert probe.largest <= bound < n * n // 4, (probe.largest, bound)


def test_topk_rejects_bad_k():
    emb = torch.eye(4)
    with pytest.raises(ValueError, match="between 1 and 3"):
        blocked_topk(emb, 4)


def _planted():
    # Rows 0/1 are near-duplicates, 2/3 similar, 4 far from everyone.
    v = torch.tensor([[1.0, 0, 0], [1.0, 0.01, 0], [0.6, 0.8, 0], [0.5, 0.86, 0.1], [0, 0, 1.0]])
    emb = F.normalize(v, dim=1)
    return emb, torch.tensor([0, 0, 1, 1, 2])


def test_filters_on_planted_example():
    emb, labels = _planted()
    s, i = blocked_topk(emb, 2)
    pairs, cos = spps_from_topk(s, i, SamplerConfig(k=1, dup_threshold=1.0))
    assert pairs.tolist() == [[0, 1], [1, 0], [2, 3], [3, 2], [4, 3]]
    no_dup, _ = spps_from_topk(s, i, SamplerConfig(k=1, dup_threshold=0.99))
    assert (0, 1) not in set(map(tuple, no_dup.tolist())) and (1, 0) not in set(map(tuple, no_dup.tolist()))
    thr, _ = spps_from_topk(s, i, SamplerConfig(k=1, threshold=0.5, dup_threshold=1.0))
    assert all(a != 4 for a, _ in thr.tolist())  # row 4's best neighbour is far below 0.5
    mutual, _ = spps_from_topk(s, i, SamplerConfig(k=1, mutual=True, dup_threshold=1.0))
    assert set(map(tuple, mutual.tolist())) == {(0, 1), (1, 0), (2, 3), (3, 2)}
    sym, _ = spps_from_topk(s, i, SamplerConfig(k=1, symmetrize=True, dup_threshold=1.0))
    sym_set = set(map(tuple, sym.tolist()))
    assert all((b, a) in sym_set for a, b in sym_set) and len(sym) == len(sym_set)


def test_pair_precision_and_diagnostics_on_planted_pairs():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    pairs = torch.tensor([[0, 1], [2, 3], [4, 0], [5, 4]])
    assert pair_precision(pairs, labels) == 75.0
    idx = torch.tensor([[1, 2], [0, 3], [3, 0], [2, 1], [5, 0], [4, 1]])
    d = diagnostics(pairs, torch.ones(4), idx, labels, 6)
    assert d["num_pairs"] == 4 and d["pair_precision"] == 75.0
    assert d["neighbour_precision_at_k"] == {"1": 100.0, "2": 50.0}
    # images 0,2,4,5 anchor one pair each; 1 and 3 anchor none
    assert d["pairs_per_image_hist"] == {"0": 2, "1": 4}


def test_pair_file_roundtrip_and_bad_file(tmp_path):
    pairs, cos = torch.tensor([[3, 7], [7, 3]]), torch.tensor([0.5, 0.25])
    sha = write_pairs(tmp_path / "p.csv", pairs, cos)
    assert (tmp_path / "p.csv").read_text() == "i,j,cos\n3,7,0.500000\n7,3,0.250000\n"
    assert sha == hashlib.sha256((tmp_path / "p.csv").read_bytes()).hexdigest()
    p2, c2 = read_pairs(tmp_path / "p.csv")
    assert torch.equal(p2, pairs) and torch.allclose(c2, cos)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="mine stage"):
        read_pairs(tmp_path / "bad.csv")


def test_dup_threshold_null_keeps_near_duplicate_neighbours():
    import torch

    from sempos.mining.sampler import SamplerConfig, spps_from_topk

    # Every row's neighbour is at cos 0.995: the default cut (0.99) removes them all, None keeps them all.
    sims = torch.full((4, 1), 0.995)
    idx = torch.tensor([[1], [0], [3], [2]])
    cut = spps_from_topk(sims, idx, SamplerConfig.from_cfg({"k": 1, "dup_threshold": 0.99}))
    off = spps_from_topk(sims, idx, SamplerConfig.from_cfg({"k": 1, "dup_threshold": None}))
    assert len(cut[0]) == 0 and len(off[0]) == 4
