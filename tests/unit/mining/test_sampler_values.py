"""The sampler's pair selection and report by value: validation boundaries, each filter at its cut, the
mutual test against a brute-force reference, dedupe, diagnostics' histograms and quantiles, pair files."""

import math
import random

import pytest
import torch

from sempos.errors import ConfigError, InvalidValueError
from sempos.mining import sampler
from sempos.mining.sampler import SamplerConfig, dedupe, diagnostics, read_pairs, spps_from_topk, write_pairs


def cfg(**kw):
    return SamplerConfig(**{"dup_threshold": None, **kw})


def as_list(pairs):
    return [tuple(p) for p in pairs.tolist()]


# ---------------------------------------------------------------- SamplerConfig boundaries

def test_config_accepts_the_smallest_and_extreme_valid_values():
    assert SamplerConfig(k=1).k == 1
    assert SamplerConfig(k_max=0).k_all == 5 and SamplerConfig(k=2, k_max=7).k_all == 7
    assert SamplerConfig(block=1).block == 1
    assert SamplerConfig(threshold=-1.0, dup_threshold=-1.0).threshold == -1.0  # the cosine range is closed
    assert SamplerConfig(threshold=1.0, dup_threshold=1.0).dup_threshold == 1.0
    assert SamplerConfig(threshold=0.5, dup_threshold=0.5).threshold == 0.5  # equal cuts keep cos == 0.5


@pytest.mark.parametrize("kw,phrase", [
    ({"k": 0}, "positive integer"), ({"k": True}, "positive integer"), ({"k": 2.0}, "positive integer"),
    ({"k_max": -1}, "k_max must be an integer >= 0"), ({"k_max": 2.5}, "k_max must be an integer >= 0"),
    ({"threshold": -1.5}, r"cosine in \[-1, 1\]"), ({"dup_threshold": -1.01}, r"cosine in \[-1, 1\]"),
    ({"threshold": 0.6, "dup_threshold": 0.5}, "every pair would be dropped"),
    ({"block": 0}, "block must be a positive integer"), ({"block": 2.0}, "block must be a positive integer"),
])
def test_config_rejects_values_just_outside(kw, phrase):
    with pytest.raises(ConfigError, match=phrase):
        SamplerConfig(**kw)


def test_mutual_knn_only_alias_agreeing_with_mutual_is_accepted():
    assert SamplerConfig.from_cfg({"mutual": True, "mutual_knn_only": True}).mutual is True
    assert SamplerConfig.from_cfg({"mutual": False, "mutual_knn_only": False}).mutual is False
    with pytest.raises(ConfigError, match="contradicts"):
        SamplerConfig.from_cfg({"mutual": True, "mutual_knn_only": False})


# ---------------------------------------------------------------- spps_from_topk by value

def test_spps_rejects_inputs_that_are_not_two_equal_n_by_k_tensors():
    with pytest.raises(InvalidValueError, match="must both be"):
        spps_from_topk(torch.ones(4), torch.ones(4, dtype=torch.long), cfg(k=1))
    with pytest.raises(InvalidValueError, match="must both be"):
        spps_from_topk(torch.ones(4, 2), torch.zeros(4, 3, dtype=torch.long), cfg(k=1))


def test_spps_drops_a_hand_made_self_pair_whatever_the_filters():
    sims, idx = torch.tensor([[0.5], [0.5]]), torch.tensor([[0], [0]])  # row 0 lists itself
    for c in (cfg(k=1), SamplerConfig(k=1), cfg(k=1, threshold=0.25), SamplerConfig(k=1, threshold=0.25)):
        pairs, cos = spps_from_topk(sims, idx, c)
        assert as_list(pairs) == [(1, 0)] and cos.tolist() == [0.5]


def test_spps_cuts_are_inclusive_at_the_threshold_and_at_the_duplicate_cut():
    sims = torch.tensor([[0.75], [0.5], [0.25]])  # exact in float32
    idx = torch.tensor([[1], [2], [0]])
    assert as_list(spps_from_topk(sims, idx, cfg(k=1, dup_threshold=0.5))[0]) == [(1, 2), (2, 0)]
    assert as_list(spps_from_topk(sims, idx, cfg(k=1, threshold=0.5))[0]) == [(0, 1), (1, 2)]
    both, cos = spps_from_topk(sims, idx, cfg(k=1, threshold=0.5, dup_threshold=0.5))
    assert as_list(both) == [(1, 2)] and cos.tolist() == [0.5]


def test_spps_mutual_at_the_ends_of_the_sorted_edge_list():
    one = torch.ones(2, 1)
    # Two rows, each the other's neighbour: the largest edge key (1, 0) is mutual and must be found.
    assert as_list(spps_from_topk(one, torch.tensor([[1], [0]]), cfg(k=1, mutual=True))[0]) == [(0, 1), (1, 0)]
    # A 3-cycle 0->1->2->0 has no mutual edge; (1, 2)'s reverse (2, 1) sorts after every edge.
    cyc = torch.tensor([[1], [2], [0]])
    assert len(spps_from_topk(torch.ones(3, 1), cyc, cfg(k=1, mutual=True))[0]) == 0
    # 0->1, 1->2, 2->1: only 1<->2 is mutual, and it holds the largest key.
    pairs, _ = spps_from_topk(torch.ones(3, 1), torch.tensor([[1], [2], [1]]), cfg(k=1, mutual=True))
    assert as_list(pairs) == [(1, 2), (2, 1)]


def _reference_spps(sims, idx, c):
    """The filters written out pair by pair (docs/science.md §1.2)."""
    n, k = len(idx), c.k
    first = [set(idx[i, :k].tolist()) for i in range(n)]
    out = []
    for i in range(n):
        for r in range(k):
            j, s = int(idx[i, r]), float(sims[i, r])
            if j == i or (c.dup_threshold is not None and s > c.dup_threshold) or \
                    (c.threshold is not None and s < c.threshold) or (c.mutual and i not in first[j]):
                continue
            out.append((i, j, s))
    if c.symmetrize:
        out += [(j, i, s) for i, j, s in out]
    if c.dedupe:
        seen, kept = set(), []
        for i, j, s in out:
            if (i, j) not in seen:
                seen.add((i, j))
                kept.append((i, j, s))
        out = kept
    return out


def test_spps_equals_the_pair_by_pair_reference_on_random_neighbour_lists():
    rng = random.Random(0)
    for case in range(40):
        n = rng.randint(2, 7)
        kk = rng.randint(1, n - 1)
        idx = torch.tensor([rng.sample([j for j in range(n) if j != i], kk) for i in range(n)])
        # Cosines on a 1/8 grid, sorted per row: exact in float32, so equal-to-cut cases occur.
        sims = torch.tensor([sorted((rng.randint(-8, 8) / 8 for _ in range(kk)), reverse=True) for _ in range(n)])
        thr = rng.choice([None, -0.5, 0.0, 0.25, 0.5])
        dup = rng.choice([None, 0.5, 0.75, 1.0])
        if thr is not None and dup is not None and thr > dup:
            thr = dup
        c = SamplerConfig(k=rng.randint(1, kk), threshold=thr, dup_threshold=dup, mutual=rng.random() < 0.5,
                          symmetrize=rng.random() < 0.5, dedupe=rng.random() < 0.7)
        pairs, cos = spps_from_topk(sims, idx, c)
        ref = _reference_spps(sims, idx, c)
        assert as_list(pairs) == [(i, j) for i, j, _ in ref], (case, c)
        assert cos.tolist() == [s for _, _, s in ref], (case, c)


# ---------------------------------------------------------------- dedupe

def test_dedupe_keeps_first_occurrences_in_order_with_their_cosines():
    pairs = torch.tensor([[2, 1], [0, 1], [2, 1], [1, 0], [0, 1]])
    p, c = dedupe(pairs, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]))
    assert as_list(p) == [(2, 1), (0, 1), (1, 0)] and c.tolist() == pytest.approx([0.1, 0.2, 0.4])


def test_dedupe_tells_apart_pairs_with_large_ids():
    # (0, 4096) and (1, 4096) would share a key if the key were not an exact integer.
    p, c = dedupe(torch.tensor([[0, 4096], [1, 4096], [0, 4096]]), torch.tensor([0.5, 0.25, 0.125]))
    assert as_list(p) == [(0, 4096), (1, 4096)] and c.tolist() == [0.5, 0.25]


def test_no_pairs_come_out_as_an_empty_m_by_2_tensor():
    p, c = dedupe(torch.empty(0, 2, dtype=torch.long), torch.empty(0))
    assert p.shape == (0, 2) and c.shape == (0,)
    p, c = spps_from_topk(torch.full((3, 1), 0.995), torch.tensor([[1], [0], [0]]), SamplerConfig(k=1))
    assert p.shape == (0, 2) and p.dtype == torch.long and c.shape == (0,)


# ---------------------------------------------------------------- diagnostics

def test_histograms_count_images_that_anchor_or_touch_no_pair():
    pairs = torch.tensor([[0, 1], [1, 0]])
    idx = torch.tensor([[1], [0], [3], [2]])
    d = diagnostics(pairs, torch.tensor([0.5, 0.5]), idx, torch.tensor([0, 0, 1, 1]), 4)
    assert d["pairs_per_image_hist"] == {"0": 2, "1": 2}
    assert d["images_in_pairs_hist"] == {"0": 2, "1": 0, "2": 2}
    assert d["coverage"] == 50.0


def test_neighbour_precision_leaves_out_unlabeled_images_on_either_side():
    # Row 0 (label 0) -> 1 (label 0): counted, same. Row 1 -> 2 (unlabeled): left out. Row 2 is unlabeled.
    idx = torch.tensor([[1], [2], [0]])
    d = diagnostics(torch.empty(0, 2, dtype=torch.long), torch.empty(0), idx, torch.tensor([0, 0, -1]), 3)
    assert d["neighbour_precision_at_k"] == {"1": 100.0}
    d = diagnostics(torch.empty(0, 2, dtype=torch.long), torch.empty(0), idx, torch.tensor([0, 1, -1]), 3)
    assert d["neighbour_precision_at_k"] == {"1": 0.0}


def test_cos_quantiles_by_value_and_empty_when_no_pairs():
    pairs = torch.tensor([[0, 1], [1, 2], [2, 0]])
    idx = torch.tensor([[1], [2], [0]])
    d = diagnostics(pairs, torch.tensor([1.0, 0.0, 0.5]), idx, torch.zeros(3, dtype=torch.long), 3)
    assert d["cos_quantiles"] == pytest.approx({"q10": 0.1, "q50": 0.5, "q90": 0.9})
    d = diagnostics(torch.empty(0, 2, dtype=torch.long), torch.empty(0), idx, torch.zeros(3, dtype=torch.long), 3)
    assert d["cos_quantiles"] == {}


def test_diagnostics_of_no_images():
    d = diagnostics(torch.empty(0, 2, dtype=torch.long), torch.empty(0), torch.empty(0, 1, dtype=torch.long),
                    torch.empty(0, dtype=torch.long), 0)
    assert d["num_images"] == 0 and d["num_pairs"] == 0 and math.isnan(d["coverage"])


def test_filter_report_needs_both_sims_and_cfg():
    sims, idx = torch.tensor([[0.5], [0.5]]), torch.tensor([[1], [0]])
    pairs, cos = spps_from_topk(sims, idx, cfg(k=1))
    labels = torch.tensor([0, 0])
    for extra in ({"sims": sims}, {"cfg": cfg(k=1)}, {}):
        d = diagnostics(pairs, cos, idx, labels, 2, **extra)
        assert not {"candidates", "removed_by", "precision_vs_k"} & set(d)
    d = diagnostics(pairs, cos, idx, labels, 2, sims=sims, cfg=cfg(k=1))
    assert d["candidates"] == 2 and d["precision_vs_k"] == {"1": {"num_pairs": 2, "pair_precision": 100.0}}


def test_removed_by_counts_each_of_the_n_by_k_candidates_once():
    # Rows 0/1 are near-duplicates (0.995), 2->3 is below the threshold, 3->2 and 2->3 mutual.
    sims = torch.tensor([[0.995], [0.995], [0.25], [0.25]])
    idx = torch.tensor([[1], [0], [3], [2]])
    expected = {"dup_threshold": 2, "threshold": 2, "mutual": 0}
    for sym in (False, True):  # symmetrize adds pairs after the filters; it must not double the counts
        c = SamplerConfig(k=1, threshold=0.5, symmetrize=sym)
        assert sampler._removed_by(sims, idx, c) == expected
    # A hand-made list naming the same neighbour twice: both entries are candidates.
    sims2, idx2 = torch.tensor([[0.995, 0.995], [0.5, 0.5]]), torch.tensor([[1, 1], [0, 0]])
    c2 = SamplerConfig(k=2)
    assert sampler._removed_by(sims2, idx2, c2) == {"dup_threshold": 2, "threshold": 0, "mutual": 0}
    assert sampler._removed_by(sims2, idx2, SamplerConfig(k=2, mutual=True, dup_threshold=None)) == \
        {"dup_threshold": 0, "threshold": 0, "mutual": 0}


# ---------------------------------------------------------------- pair files

def test_read_pairs_hands_torch_only_writable_arrays(tmp_path, monkeypatch):
    # torch warns (once per process) that a tensor over a read-only numpy array is undefined behaviour.
    path = tmp_path / "p.csv"
    write_pairs(path, torch.tensor([[3, 7], [7, 3]]), torch.tensor([0.5, 0.25]))
    real, seen = torch.from_numpy, []

    def from_numpy(a):
        seen.append(a.flags.writeable)
        return real(a)

    monkeypatch.setattr(torch, "from_numpy", from_numpy)
    pairs, cos = read_pairs(path)
    assert seen == [True, True]
    assert pairs.tolist() == [[3, 7], [7, 3]] and cos.tolist() == [0.5, 0.25] and cos.dtype == torch.float32
