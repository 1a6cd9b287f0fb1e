"""Positive sources, pair sets S/A/A2/M, equal steps, and SePP variant M / partner masking losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import fake_prepared
from sempos.errors import ConfigError
from sempos.losses import infonce_queue, multi_positive_infonce, multi_positive_nt_xent, nt_xent
from sempos.positives import pairsets
from sempos.positives.partners import PartnerIndex
from sempos.positives.pairs import PairSource
from sempos.positives.sources import build_positives


def labels_pool(n=400, k=4, seed=0):
    y = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))
    return y, torch.arange(n)


def test_oracle_pairs_are_same_label_distinct_and_deterministic():
    y, pool = labels_pool()
    p = pairsets.oracle_pairs(y, pool, 1000, seed=3)
    assert p.shape == (1000, 2)
    assert (y[p[:, 0]] == y[p[:, 1]]).all() and (p[:, 0] != p[:, 1]).all()
    assert torch.equal(p, pairsets.oracle_pairs(y, pool, 1000, seed=3))
    assert pairsets.pair_precision(p, y) == 100.0


def test_random_pairs_never_self_and_roughly_chance_precision():
    y, pool = labels_pool(2000)
    p = pairsets.random_pairs(pool, 4000, seed=1)
    assert (p[:, 0] != p[:, 1]).all()
    assert 15 < pairsets.pair_precision(p, y) < 35  # chance is 25% for 4 balanced classes


def test_study_sets_are_matched():
    y, pool = labels_pool()
    S = pairsets.build_S(y, pool, pairs_per_class=20, seed=0)
    assert len(S) == 80 and (y[S[:, 0]] == y[S[:, 1]]).all()
    assert len(torch.unique(S.flatten())) == 160  # image-disjoint
    A = pairsets.build_A(S)
    assert torch.equal(torch.bincount(y[A[:, 0]]), torch.bincount(y[S[:, 0]])) and (A[:, 0] == A[:, 1]).all()
    a2 = pairsets.A2Sampler(S)
    e0, e1 = a2.for_epoch(0, 0), a2.for_epoch(0, 1)
    assert len(e0) == 80 and set(e0[:, 0].tolist()) <= set(S.flatten().tolist())
    assert not torch.equal(e0, e1) and torch.equal(e0, a2.for_epoch(0, 0))
    mined = pairsets.oracle_pairs(y, pool, 600, seed=9)  # stands in for sampler output
    M = pairsets.build_M(mined, y, S, seed=0)
    assert len(M) == len(S)
    assert torch.equal(torch.bincount(y[M[:, 0]], minlength=4), torch.bincount(y[S[:, 0]], minlength=4))


def test_study_S_rejects_near_duplicates_and_reports_short_classes():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    feats = F.normalize(torch.tensor([[1.0, 0], [1.0, 0.001], [0, 1.0], [1, 0], [0, 1], [1, 1]]), dim=1)
    S = pairsets.build_S(y, torch.arange(6), 1, seed=0, features=feats, dup_threshold=0.95)
    for a, b in S.tolist():
        assert float(feats[a] @ feats[b]) <= 0.95
    with pytest.raises(ConfigError, match="pairs_per_class"):
        pairsets.build_S(y, torch.arange(6), 2, seed=0)


def test_pair_source_equal_steps_and_mixing():
    base = torch.arange(10)
    extra = torch.tensor([[0, 5], [1, 6], [2, 7]])
    add = PairSource(base, extra, mix="add")
    assert len(add) == 13 and len(add.for_epoch(0, 0)) == 13
    eq = PairSource(base, extra, mix="add", equal_steps=True)
    e = eq.for_epoch(0, 0)
    assert len(eq) == 10 and len(e) == 10 and torch.equal(e, eq.for_epoch(0, 0))
    rep = PairSource(base, extra, mix="replace", equal_steps=True)
    assert len(rep.for_epoch(1, 2)) == 10  # cycles the 3 pairs to the host's step count
    assert set(map(tuple, rep.for_epoch(1, 2).tolist())) <= set(map(tuple, extra.tolist()))
    with pytest.raises(ValueError, match="replace"):
        PairSource(base, None, mix="replace")


def test_partner_index_lookup():
    idx = PartnerIndex(torch.tensor([[1, 2], [3, 3]]), num_images=5)
    m = idx.lookup(torch.tensor([1, 2, 3, -1]), torch.tensor([2, 1, 3, -1]))
    assert m.tolist() == [[True, False, False, False], [False, True, False, False],
                          [False, False, False, False], [False, False, False, False]]


def test_variant_m_reduces_to_plain_losses_without_partners():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    queue = F.normalize(torch.randn(20, 8, generator=g), dim=1)
    eye = torch.eye(6, dtype=torch.bool)
    assert torch.allclose(multi_positive_infonce(q, k, queue, eye, 0.2), infonce_queue(q, k, queue, 0.2))
    partner_view = torch.roll(torch.eye(12, dtype=torch.bool), 6, dims=1)
    assert torch.allclose(multi_positive_nt_xent(q, k, 0.2, partner_view), nt_xent(q, k, 0.2))


def test_variant_m_with_a_partner_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queue = torch.tensor([[-1.0, 0.0]])
    tau = 0.5
    mask = torch.tensor([[True, True]])
    e = lambda x: math.exp(x / tau)  # noqa: E731
    den = e(1) + e(0) + e(-1)
    expected = -0.5 * (math.log(e(1) / den) + math.log(e(0) / den))
    assert math.isclose(multi_positive_infonce(q, keys, queue, mask, tau).item(), expected, rel_tol=1e-6)


def test_masking_partners_removes_them_from_the_denominator():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = infonce_queue(q, k, queue, 1.0)
    masked = infonce_queue(q, k, queue, 1.0, queue_mask=torch.tensor([[True, False]]))
    assert math.isclose(masked.item(), -math.log(math.e / (math.e + 1)), rel_tol=1e-6)
    assert masked < plain


def test_build_positives_sources_on_fake_data(tmp_path):
    data = fake_prepared(n_train=200)
    n = len(data["splits"]["pretrain"])
    aug = build_positives({}, data, 0)
    assert len(aug.pairs) == n and aug.partners is None
    orc = build_positives({"positives": {"source": "oracle", "mix": "add"}}, data, 0)
    assert len(orc.pairs) == 2 * n and orc.report["pair_precision"] == 100.0
    m = build_positives({"positives": {"source": "random", "variant": "M"}}, data, 0)
    assert len(m.pairs) == n and m.partners is not None
    s = build_positives({"positives": {"source": "study_s", "pairs_per_class": 5}}, data, 0)
    assert len(s.pairs) == 5 * 4 and s.report["pair_precision"] == 100.0
    with pytest.raises(ConfigError, match="mine stage"):
        build_positives({"positives": {"source": "mined", "from": "x"}}, data, 0, tmp_path / "missing.csv")


SMALL_HEADS = {"proj_hidden": 32, "proj_dim": 16}


@pytest.mark.parametrize("algo,hp,pos", [
    ("mocov2", {"queue_size": 64, **SMALL_HEADS}, {"source": "oracle", "variant": "M", "mask_partners": True}),
    ("simclr", SMALL_HEADS, {"source": "oracle", "variant": "M"}),
    ("simclr", SMALL_HEADS, {"source": "random", "mix": "add", "mask_partners": True}),
])
def test_trainer_runs_variant_m_and_partner_masking(tmp_path, algo, hp, pos):
    from conftest import tiny_settings
    from sempos.runtime import resolve
    from sempos.train.trainer import PretrainJob, Trainer

    data = fake_prepared(n_train=96)
    settings = tiny_settings(algo, epochs=1, **hp)
    settings["hp"]["positives"] = pos
    p = build_positives(settings["hp"], data, 0)
    rt = resolve({"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False})

    def run(cfg, out):
        t = Trainer(PretrainJob(settings, 0, tmp_path / out, data, pairs=p.pairs, partners=p.partners,
                                positives_cfg=cfg), rt)
        t.fit()
        return t

    t = run(pos, "on")
    assert (t.model.multi_positive, t.model.mask_partners) == (pos.get("variant") == "M", bool(pos.get("mask_partners")))
    assert t.model.partners is p.partners
    # The same pairs, weights and batches without the switches: the switches change the training.
    off = run({k: v for k, v in pos.items() if k not in ("variant", "mask_partners")}, "off")
    assert t.history[-1]["loss"] != pytest.approx(off.history[-1]["loss"], rel=1e-6)
    if algo == "mocov2":
        # Both views' keys of the epoch's last batch fill the 64-key queue, carrying their image ids.
        last = t.pairs.for_epoch(0, 0)[(t.steps_per_epoch - 1) * t.batch: t.steps_per_epoch * t.batch]
        assert torch.equal(t.model.queue.ids, torch.cat([last[:, 0], last[:, 1]]))


def test_mined_source_must_name_an_augment_method():
    import yaml
    from pathlib import Path

    from sempos.config import deep_merge, validate

    base = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
    bad = {"methods": {"x": {"algo": "simclr", "positives": {"source": "mined"}}}}
    with pytest.raises(ConfigError, match="positives.from is required"):
        validate(deep_merge(base, bad))
    bad["methods"]["x"]["positives"]["from"] = "ghost"
    with pytest.raises(ConfigError, match="'ghost' is not a method"):
        validate(deep_merge(base, bad))
    bad["methods"]["x"]["positives"]["from"] = "simclr_sepp"
    with pytest.raises(ConfigError, match="circular"):
        validate(deep_merge(base, bad))


def test_study_table_relative_gain_paired_difference_and_ablation_rows():
    import pandas as pd

    from sempos.report.positives import study_table

    # Two seeds: S - A is 10 and 10 on kNN (std 0: a zero-width CI), the relative gain 10 / 40 = 25 %.
    rows = {("simclr_s", 0): [50.0, 60.0], ("simclr_s", 1): [52.0, 61.0], ("simclr_a", 0): [40.0, 50.0],
            ("simclr_a", 1): [42.0, 52.0], ("simclr_s_nojit", 0): [30.0, 33.0], ("simclr_a_nojit", 0): [20.0, 30.0]}
    per_seed = pd.DataFrame.from_dict(rows, orient="index", columns=["knn top1", "linear top1"])
    per_seed.index = pd.MultiIndex.from_tuples(per_seed.index, names=["method", "seed"])
    methods = {"simclr_s": {"algo": "simclr", "positives": {"source": "study_s"}},
               "simclr_a": {"algo": "simclr", "positives": {"source": "study_a"}},
               "simclr_s_nojit": {"algo": "simclr", "positives": {"source": "study_s"}, "augment": {"jitter_p": 0.0}},
               "simclr_a_nojit": {"algo": "simclr", "positives": {"source": "study_a"}, "augment": {"jitter_p": 0.0}}}
    long, t = study_table(per_seed, methods, pd.DataFrame())
    assert t.loc[("simclr", "full pipeline", "knn top1"), "gain (S−A)/A %"] == pytest.approx(24.39)  # 100 * 10 / 41, rounded
    assert t.loc[("simclr", "full pipeline", "knn top1"), "S − A"] == "+10.00 [+10.00, +10.00]"
    assert t.loc[("simclr", "jitter_p=0.0", "linear top1"), "gain (S−A)/A %"] == pytest.approx(10.0)
    assert t.loc[("simclr", "jitter_p=0.0", "linear top1"), "S − A"] == "+3.00 (n=1, no CI)"
    s_knn = long[(long["set"] == "S") & (long["metric"] == "knn top1") & (long["augmentation"] == "full pipeline")]
    assert s_knn.iloc[0]["mean"] == 51.0 and s_knn.iloc[0]["n"] == 2


def test_dup_threshold_has_one_default():
    import inspect

    from sempos.mining.sampler import DUP_THRESHOLD, SamplerConfig
    from sempos.positives import pairsets
    from sempos.positives.sources import DEFAULTS

    build_s = inspect.signature(pairsets.build_S).parameters["dup_threshold"].default
    assert DEFAULTS["dup_threshold"] == SamplerConfig().dup_threshold == build_s == DUP_THRESHOLD == 0.99
    # The mine stage passes the merged positives settings: no entry-level override means the default.
    assert SamplerConfig.from_cfg({"source": "mined", **DEFAULTS}).dup_threshold == DUP_THRESHOLD
