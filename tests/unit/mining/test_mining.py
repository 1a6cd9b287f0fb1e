"""The Semantic Sampler: blocked exact top-K, bounded memory, SPPS filters and diagnostics, mine(), pair files."""

import hashlib
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import LargestTensor, fake_prepared
from sempos.errors import ConfigError
from sempos.mining import cosine_topk
from sempos.mining.sampler import (SamplerConfig, diagnostics, mine, pair_precision, read_pairs, spps_from_topk,
                                   write_pairs)
from sempos.mining.topk import blocked_topk

SRC = Path(__file__).resolve().parents[3] / "src"


def brute_force(emb, k):
    e = F.normalize(emb.double(), dim=1)
    sim = e @ e.t()
    sim.fill_diagonal_(float("-inf"))
    s, i = sim.topk(k, dim=1)
    return s.float(), i


def rand_emb(n, d, seed=0, dtype=torch.float32):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- exact top-K

@pytest.mark.parametrize("n,d,k,bq,bk", [
    (97, 8, 5, 16, 32),      # ragged last blocks on both sides
    (64, 8, 3, 64, 64),      # one block: the diagonal lies inside it
    (50, 4, 49, 7, 9),       # k = N - 1: every other row
    (120, 16, 10, 1000, 3),  # key blocks smaller than k: the running merge does all the work
    (33, 5, 4, 1, 1),        # single-row blocks
])
def test_blocked_topk_equals_brute_force(n, d, k, bq, bk):
    emb = rand_emb(n, d, seed=n)  # not normalised: the function ranks by cosine itself
    s, i = blocked_topk(emb, k, block_q=bq, block_k=bk)
    bs, bi = brute_force(emb, k)
    assert s.shape == (n, k) and i.shape == (n, k) and s.dtype == torch.float32 and i.dtype == torch.long
    assert torch.allclose(s, bs, atol=1e-5)
    assert torch.equal(i, bi)  # random continuous data: no ties
    assert not (i == torch.arange(n).view(-1, 1)).any()
    assert (s[:, :-1] >= s[:, 1:]).all()  # sorted by decreasing similarity


def test_topk_dtypes_and_device_argument():
    emb = rand_emb(80, 12, seed=1)
    ref_s, ref_i = brute_force(emb, 4)
    s64, i64 = cosine_topk(emb.double(), 4, block_q=16, block_k=32, device="cpu")
    assert torch.equal(i64, ref_i) and torch.allclose(s64, ref_s, atol=1e-6)
    # Half-precision embeddings (the ImageNet setting) are scored in fp32: sims match to input precision.
    for dt in (torch.float16, torch.bfloat16):
        s, i = blocked_topk(emb.to(dt), 4, block_q=16, block_k=32, device=torch.device("cpu"))
        exact = F.normalize(emb.to(dt).double(), dim=1)
        picked = (exact.unsqueeze(1) * exact[i]).sum(-1).float()
        assert torch.allclose(s, picked, atol=2e-3)
        assert (i == ref_i).float().mean() > 0.9  # rounding of the inputs may swap near-ties only


def test_topk_without_self_exclusion_and_raw_dot_product():
    emb = rand_emb(40, 6, seed=2)
    s, i = blocked_topk(emb, 3, block_q=8, block_k=8, exclude_self=False)
    assert torch.equal(i[:, 0], torch.arange(40)) and torch.allclose(s[:, 0], torch.ones(40), atol=1e-5)
    s, i = blocked_topk(emb, 3, block_q=8, block_k=8, normalize=False)
    dot = emb @ emb.t()
    dot.fill_diagonal_(float("-inf"))
    ds, di = dot.topk(3, dim=1)
    assert torch.equal(i, di) and torch.allclose(s, ds, atol=1e-5)


def test_topk_rejects_bad_input():
    with pytest.raises(ValueError, match=r"between 1 and 3 .*k < N"):
        blocked_topk(torch.eye(4), 4)  # k >= N
    with pytest.raises(ValueError, match="between 1 and"):
        blocked_topk(torch.eye(4), 0)
    with pytest.raises(ValueError, match="integer"):
        blocked_topk(torch.eye(4), 2.5)
    with pytest.raises(ValueError, match="non-empty"):
        blocked_topk(torch.empty(0, 8), 1)
    with pytest.raises(ValueError, match="non-empty"):
        blocked_topk(torch.ones(8), 1)
    with pytest.raises(ValueError, match="floating point"):
        blocked_topk(torch.ones(5, 3, dtype=torch.long), 1)
    bad = torch.eye(5)
    bad[2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        blocked_topk(bad, 2)
    with pytest.raises(ValueError, match="block"):
        blocked_topk(torch.eye(5), 2, block_q=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_topk_on_cuda_matches_cpu():
    emb = rand_emb(3000, 64, seed=3)
    s, i = blocked_topk(emb, 5, block_q=512, block_k=1024)
    sg, ig = blocked_topk(emb.cuda(), 5, block_q=512, block_k=1024, device="cuda")
    assert sg.device.type == "cpu" and torch.allclose(s, sg, atol=1e-4) and (i == ig).float().mean() > 0.99
    sb, ib = blocked_topk(emb.cuda().bfloat16(), 5, block_q=512, block_k=1024, device="cuda")
    assert torch.allclose(s, sb, atol=2e-2) and (i == ib).float().mean() > 0.8


# ---------------------------------------------------------------- memory: never N x N

def test_no_op_produces_an_n_by_n_tensor():
    n, d, k, bq, bk = 4000, 64, 5, 256, 512
    emb = rand_emb(n, d, seed=4, dtype=torch.float64)
    with LargestTensor() as probe:
        blocked_topk(emb, k, block_q=bq, block_k=bk)
    # One similarity block is the largest thing made: no N x N, and not even an N x D temporary.
    assert probe.largest <= bq * bk < n * d, (probe.largest, bq * bk)
    assert probe.largest * 100 < n * n


_PROBE = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(2)
    sys.path.insert(0, sys.argv[3])
    from sempos.mining.topk import blocked_topk

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    mode, n = sys.argv[1], int(sys.argv[2])
    emb = torch.randn(n, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Warm up kernels and thread pools on a slice so their one-off allocations are not counted.
    blocked_topk(emb[:300], 5, block_q=128, block_k=256)
    (emb[:300] @ emb[:300].t()).topk(5, dim=1)
    try:  # writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        print("NORESET")
        raise SystemExit(0)
    before = status("VmRSS")
    if mode == "blocked":
        blocked_topk(emb, 5, block_q=512, block_k=1024)
    else:  # the control: what materialising N x N costs
        sim = emb @ emb.t()
        sim.fill_diagonal_(float("-inf"))
        sim.topk(5, dim=1)
        del sim
    print(status("VmHWM") - before)
""")


def _peak_growth(mode: str, n: int) -> int | None:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, str(n), str(SRC)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return None if out[-1] == "NORESET" else int(out[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_blocked_mining_peak_memory_stays_far_below_n_by_n():
    # 5000 float64 items: an N x N similarity matrix is 200 MB. A fresh process measures its own peak RSS.
    n = 5000
    nxn = n * n * 8
    grown = _peak_growth("blocked", n)
    if grown is None:
        pytest.skip("this kernel does not allow resetting the peak RSS")
    assert grown < nxn / 4, f"blocked top-K raised peak RSS by {grown / 2**20:.0f} MiB (N x N is {nxn / 2**20:.0f})"
    # The probe does see an N x N allocation, so the bound above is meaningful.
    assert _peak_growth("brute", n) > nxn * 0.9


# ---------------------------------------------------------------- SPPS filters on a planted example

def _planted():
    """Unit vectors at angles A 0, B 10, C 25, D 90 degrees (labels 0, 0, 1, 1).

    k=1 neighbours: A->B, B->A, C->B (15 < 25 degrees), D->C (65 degrees). Only A<->B is mutual.
    """
    deg = torch.tensor([0.0, 10.0, 25.0, 90.0]) * math.pi / 180
    emb = torch.stack([deg.cos(), deg.sin()], 1)
    s, i = blocked_topk(emb, 3)
    return s, i, torch.tensor([0, 0, 1, 1])


def cfg(**kw):
    return SamplerConfig(**{"dup_threshold": None, **kw})


def as_set(pairs):
    return set(map(tuple, pairs.tolist()))


def test_spps_plain_k1_and_precision():
    s, i, y = _planted()
    pairs, cos = spps_from_topk(s, i, cfg(k=1))
    assert pairs.tolist() == [[0, 1], [1, 0], [2, 1], [3, 2]]
    assert torch.allclose(cos, torch.tensor([10.0, 10.0, 15.0, 65.0]).mul(math.pi / 180).cos(), atol=1e-6)
    assert pair_precision(pairs, y) == 75.0  # C->B crosses classes


def test_spps_mutual_threshold_duplicates_symmetrize_dedupe():
    s, i, _ = _planted()
    assert as_set(spps_from_topk(s, i, cfg(k=1, mutual=True))[0]) == {(0, 1), (1, 0)}
    # k=2: B's two nearest are A and C, so C->B becomes mutual; D is nobody's neighbour.
    assert as_set(spps_from_topk(s, i, cfg(k=2, mutual=True))[0]) == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 1), (2, 0)}
    thr = math.cos(math.radians(20))
    assert as_set(spps_from_topk(s, i, cfg(k=1, threshold=thr))[0]) == {(0, 1), (1, 0), (2, 1)}
    dup = math.cos(math.radians(12))  # A and B (10 degrees apart) count as near-duplicates
    assert as_set(spps_from_topk(s, i, cfg(k=1, dup_threshold=dup))[0]) == {(2, 1), (3, 2)}
    both = cfg(k=1, threshold=math.cos(math.radians(20)), dup_threshold=dup)
    assert as_set(spps_from_topk(s, i, both)[0]) == {(2, 1)}
    sym, sym_cos = spps_from_topk(s, i, cfg(k=1, symmetrize=True))
    assert as_set(sym) == {(0, 1), (1, 0), (2, 1), (1, 2), (3, 2), (2, 3)} and len(sym) == 6
    angle = torch.tensor([0.0, 10.0, 25.0, 90.0])
    true_cos = torch.cos(torch.deg2rad(angle[sym[:, 0]] - angle[sym[:, 1]]))
    assert torch.allclose(sym_cos, true_cos, atol=1e-6)  # a reversed pair carries its cosine along
    raw, _ = spps_from_topk(s, i, cfg(k=1, symmetrize=True, dedupe=False))
    assert len(raw) == 8 and as_set(raw) == as_set(sym)  # (0,1) and (1,0) found from both ends


def test_default_config_is_the_papers_and_drops_cos_above_0_99():
    c = SamplerConfig()
    assert (c.k, c.threshold, c.mutual, c.symmetrize, c.dup_threshold) == (5, None, False, False, 0.99)
    emb = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [0.3, 1.0]]), dim=1)  # cos(0,1) = 0.9988
    s, i = blocked_topk(emb, 1)
    pairs, cos = spps_from_topk(s, i, SamplerConfig(k=1))
    assert as_set(pairs) == {(2, 3), (3, 2)} and (cos <= 0.99).all()


def test_sampler_config_validation_and_alias():
    assert SamplerConfig.from_cfg({"k": 3, "mutual_knn_only": True, "source": "mined", "from": "x"}).mutual
    with pytest.raises(ConfigError, match="contradicts"):
        SamplerConfig.from_cfg({"mutual": False, "mutual_knn_only": True})
    with pytest.raises(ConfigError, match="positive integer"):
        SamplerConfig(k=0)
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        SamplerConfig(threshold=1.5)
    with pytest.raises(ConfigError, match="every pair would be dropped"):
        SamplerConfig(threshold=0.995, dup_threshold=0.99)
    with pytest.raises(ConfigError, match="emb_dtype"):
        SamplerConfig(emb_dtype="int8")
    with pytest.raises(ConfigError, match="backbone"):
        SamplerConfig(feature="projector")
    s, i, _ = _planted()
    with pytest.raises(ConfigError, match="exceeds the 3 neighbours"):
        spps_from_topk(s, i, SamplerConfig(k=4))


def test_pair_precision_on_planted_pairs():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert pair_precision(torch.tensor([[0, 1], [2, 3], [4, 0], [5, 4]]), labels) == 75.0
    assert pair_precision(torch.tensor([[0, 2], [1, 4]]), labels) == 0.0
    assert math.isnan(pair_precision(torch.empty(0, 2, dtype=torch.long), labels))


def test_pair_precision_leaves_out_pairs_with_one_unlabeled_image():
    """A pair is judged only when both images carry a label: one unlabeled side (-1, STL-10's unlabeled split)
    is not a wrong pair."""
    labels = torch.tensor([0, 0, 1, -1, -1])
    assert pair_precision(torch.tensor([[0, 1], [2, 3], [3, 1], [3, 4]]), labels) == 100.0
    assert math.isnan(pair_precision(torch.tensor([[2, 3], [4, 0]]), labels))


def test_diagnostics_precision_vs_k_and_histograms():
    s, i, y = _planted()
    c = cfg(k=1)
    pairs, cos = spps_from_topk(s, i, c)
    d = diagnostics(pairs, cos, i, y, 4, sims=s, cfg=c)
    assert d["num_pairs"] == 4 and d["pair_precision"] == 75.0
    # Raw neighbour precision for every k' <= K = 3 (k'=2: 3 of 8 neighbours share the label; k'=3: 4 of 12).
    assert d["neighbour_precision_at_k"] == pytest.approx({"1": 75.0, "2": 37.5, "3": 100 / 3})
    assert d["precision_vs_k"]["1"] == {"num_pairs": 4, "pair_precision": 75.0}
    assert d["precision_vs_k"]["2"] == {"num_pairs": 8, "pair_precision": 37.5}
    assert d["precision_vs_k"]["3"]["num_pairs"] == 12
    assert d["pairs_per_image_hist"] == {"0": 0, "1": 4}       # every image anchors one pair
    assert d["images_in_pairs_hist"] == {"0": 0, "1": 1, "2": 2, "3": 1}  # D in 1, A and C in 2, B in 3
    assert d["coverage"] == 100.0
    json.dumps(d)  # the stage writes it as JSON
    strict = cfg(k=1, threshold=math.cos(math.radians(20)), dup_threshold=math.cos(math.radians(12)), mutual=True)
    p2, c2 = spps_from_topk(s, i, strict)
    d2 = diagnostics(p2, c2, i, y, 4, sims=s, cfg=strict)
    assert d2["num_pairs"] == 0 and math.isnan(d2["pair_precision"]) and d2["coverage"] == 0.0
    # Each filter alone: A<->B are near-duplicates, D->C is below the threshold, C->B and D->C not mutual.
    assert d2["candidates"] == 4 and d2["removed_by"] == {"dup_threshold": 2, "threshold": 1, "mutual": 2}


# ---------------------------------------------------------------- mine() end to end, pair files

def _backbone_file(tmp_path: Path) -> Path:
    from sempos.io import save_torch
    from sempos.models.resnet import build_backbone

    torch.manual_seed(0)
    meta = {"arch": "resnet18_cifar", "width": 4, "in_channels": 1, "image_size": 28, "feat_dim": 32,
            "norm_mean": [0.3], "norm_std": [0.3]}
    bb = build_backbone(arch="resnet18_cifar", width=4, in_channels=1, image_size=28)
    path = tmp_path / "backbone.pt"
    save_torch({"meta": meta, "state_dict": bb.state_dict()}, path)
    return path


def test_mine_end_to_end_and_labels_only_in_the_report(tmp_path):
    data = fake_prepared(n_train=200)
    path = _backbone_file(tmp_path)
    pre = data["splits"]["pretrain"]
    # An untrained backbone maps every image near every other (cos ~0.999), so the default 0.99
    # near-duplicate cut keeps nothing, and the report says which filter removed the candidates.
    none, _, diag0 = mine(path, data, {"k": 3}, "cpu")
    assert len(none) == 0 and diag0["removed_by"]["dup_threshold"] == diag0["candidates"] == 3 * len(pre)
    entry = {"k": 3, "k_max": 6, "dup_threshold": 0.9999, "source": "mined", "from": "x"}
    pairs, cos, diag = mine(path, data, entry, "cpu")
    assert pairs.shape[1] == 2 and len(pairs) == len(cos) > 0
    assert torch.isin(pairs, pre).all() and (pairs[:, 0] != pairs[:, 1]).all()
    assert (cos <= 0.9999).all() and len(as_set(pairs)) == len(pairs)
    assert torch.bincount(pairs[:, 0]).max() <= 3
    assert diag["num_images"] == len(pre) and diag["num_pairs"] == len(pairs)
    assert set(diag["precision_vs_k"]) == {str(k) for k in range(1, 7)}
    assert diag["precision_vs_k"]["3"]["num_pairs"] == len(pairs)
    assert diag["config"]["k"] == 3 and diag["config"]["dup_threshold"] == 0.9999
    json.dumps(diag)
    # Labels never choose pairs: scrambled labels give the same pairs, only the report changes.
    scrambled = dict(data, train_y=data["train_y"][torch.randperm(len(data["train_y"]),
                                                                generator=torch.Generator().manual_seed(1))])
    p2, c2, _ = mine(path, scrambled, entry, "cpu")
    assert torch.equal(pairs, p2) and torch.equal(cos, c2)
    # Subset ids, not row positions: pairs of a shifted pretraining subset are shifted ids.
    shifted = dict(data, splits={**data["splits"], "pretrain": pre[10:]})
    p3, _, _ = mine(path, shifted, {"k": 1, "dup_threshold": None}, "cpu")
    assert len(p3) == len(pre) - 10 and torch.isin(p3, pre[10:]).all()


def test_mine_errors(tmp_path):
    data = fake_prepared(n_train=40)
    path = _backbone_file(tmp_path)
    tiny = dict(data, splits={**data["splits"], "pretrain": torch.arange(3)})
    with pytest.raises(ConfigError, match=r"k=3 needs at least k \+ 1 = 4"):
        mine(path, tiny, {"k": 3}, "cpu")
    with pytest.raises(ConfigError, match="pretrain the `from` method"):
        mine(tmp_path / "missing.pt", data, {"k": 1}, "cpu")


def test_pair_file_roundtrip_hash_and_bad_files(tmp_path):
    pairs, cos = torch.tensor([[3, 7], [7, 3], [10, 0]]), torch.tensor([0.5, 0.25, float("nan")])  # id 0 is valid
    path = tmp_path / "sub" / "spps.csv"
    sha = write_pairs(path, pairs, cos)
    text = path.read_text()
    assert text.splitlines()[:2] == ["i,j,cos", "3,7,0.500000"]
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(f.name for f in path.parent.iterdir()) == ["spps.csv"]  # no temporary left behind
    p2, c2 = read_pairs(path)
    assert torch.equal(p2, pairs) and torch.allclose(c2[:2], cos[:2]) and math.isnan(c2[2])
    assert write_pairs(tmp_path / "again.csv", pairs, cos) == sha  # deterministic bytes
    empty = tmp_path / "empty.csv"
    write_pairs(empty, torch.empty(0, 2, dtype=torch.long), torch.empty(0))
    assert read_pairs(empty)[0].shape == (0, 2)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="mine stage"):
        read_pairs(tmp_path / "bad.csv")
    (tmp_path / "neg.csv").write_text("i,j,cos\n-1,2,0.5\n")
    with pytest.raises(ConfigError, match="negative"):
        read_pairs(tmp_path / "neg.csv")
    with pytest.raises(ConfigError, match="not found"):
        read_pairs(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="cosines"):
        write_pairs(tmp_path / "x.csv", pairs, cos[:2])



def _left_after_an_interrupted_write(tmp_path, monkeypatch):
    """What write_pairs leaves in its folder when the write dies half-way (disk full)."""
    real = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    path = tmp_path / "sub" / "spps.csv"
    with pytest.raises(OSError, match="disk full"):
        write_pairs(path, torch.tensor([[3, 7], [7, 3], [10, 2]]), torch.tensor([0.5, 0.25, 0.125]))
    monkeypatch.undo()
    return sorted(f.name for f in path.parent.iterdir())


def test_an_interrupted_pair_file_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    assert _left_after_an_interrupted_write(tmp_path, monkeypatch) == []  # no partial file, no temporary


def test_the_interrupted_write_check_catches_a_direct_writer(tmp_path, monkeypatch):
    import sempos.mining.sampler as sampler

    def direct(text, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)

    monkeypatch.setattr(sampler, "save_text", direct)
    assert _left_after_an_interrupted_write(tmp_path, monkeypatch) == ["spps.csv"]  # half a file, final name


def test_package_exports_resolve_lazily_to_their_modules():
    import sempos.mining as mining
    from sempos.mining import sampler, topk

    assert mining.cosine_topk is topk.blocked_topk and mining.mine is sampler.mine
    assert sorted(mining.__all__) == mining.__all__ and "read_pairs" in mining.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mining.nope


def test_pair_file_without_cosines_writes_nan():
    from sempos.mining.sampler import pairs_csv

    assert pairs_csv(torch.tensor([[1, 2], [0, 5]])) == "i,j,cos\n1,2,nan\n0,5,nan\n"
