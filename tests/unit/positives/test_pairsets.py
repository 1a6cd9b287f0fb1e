"""Positive sources (oracle, random), study sets S/A/A2/M, PairSource (equal steps, epoch-dependent extra
pairs), SePP-ID variant M and the partner-masking helper."""

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from sempos.errors import ConfigError
from sempos.losses import infonce_queue, mask_partners_as_negatives, multi_positive_infonce
from sempos.positives import pairsets
from sempos.positives.partners import PartnerIndex
from sempos.positives.pairs import PairSource


def labelled(n=600, classes=5, seed=0):
    y = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    return y, torch.arange(n)


def pair_set(p):
    return set(map(tuple, p.tolist()))


# ---------------------------------------------------------------- oracle and random pairs

def test_oracle_pairs_same_label_distinct_in_pool_and_spread():
    y, _ = labelled()
    pool = torch.arange(0, 600, 2)  # a subset: partners must stay inside it
    p = pairsets.oracle_pairs(y, pool, 1000, seed=3)
    assert p.shape == (1000, 2) and p.dtype == torch.long
    assert (y[p[:, 0]] == y[p[:, 1]]).all() and (p[:, 0] != p[:, 1]).all()
    assert torch.isin(p, pool).all()
    anchors = Counter(p[:, 0].tolist())
    assert set(anchors) == set(pool.tolist()) and set(anchors.values()) <= {3, 4}  # 1000 over 300 images
    assert torch.equal(p, pairsets.oracle_pairs(y, pool, 1000, seed=3))
    assert not torch.equal(p, pairsets.oracle_pairs(y, pool, 1000, seed=4))
    assert pairsets.pair_precision(p, y) == 100.0


def test_random_pairs_distinct_in_pool_and_chance_precision():
    y, pool = labelled(2000, classes=4)
    p = pairsets.random_pairs(pool, 4000, seed=1)
    assert p.shape == (4000, 2) and (p[:, 0] != p[:, 1]).all() and torch.isin(p, pool).all()
    assert set(Counter(p[:, 0].tolist()).values()) == {2}  # anchors spread as in oracle_pairs
    assert torch.equal(p, pairsets.random_pairs(pool, 4000, seed=1))
    assert 20 < pairsets.pair_precision(p, y) < 30  # chance is 25% for 4 balanced classes
    two = pairsets.random_pairs(torch.tensor([5, 9]), 6, seed=0)
    assert pair_set(two) == {(5, 9), (9, 5)}


def test_positive_sources_reject_bad_input():
    y = torch.tensor([0, 0, 1, 1, 2])
    with pytest.raises(ConfigError, match=r"classes \[2\] have a single image"):
        pairsets.oracle_pairs(y, torch.arange(5), 10, seed=0)
    with pytest.raises(ConfigError, match="0 images"):
        pairsets.oracle_pairs(y, torch.tensor([], dtype=torch.long), 10, seed=0)
    with pytest.raises(ConfigError, match="1 images"):
        pairsets.random_pairs(torch.tensor([3]), 10, seed=0)
    with pytest.raises(ConfigError, match="count must be >= 1"):
        pairsets.random_pairs(torch.arange(5), 0, seed=0)
    with pytest.raises(ConfigError, match="more than once"):
        pairsets.random_pairs(torch.tensor([1, 2, 2]), 3, seed=0)
    with pytest.raises(ConfigError, match=r"ids must lie in \[0, 5\)"):
        pairsets.oracle_pairs(y, torch.tensor([0, 1, 7]), 3, seed=0)


# ---------------------------------------------------------------- study sets S, A, A2, M

def test_S_same_label_image_disjoint_and_per_class():
    y, pool = labelled()
    S = pairsets.build_S(y, pool, pairs_per_class=30, seed=0)
    assert S.shape == (150, 2)
    assert (y[S[:, 0]] == y[S[:, 1]]).all()
    assert len(torch.unique(S.flatten())) == 300  # every image in at most one pair
    assert pairsets.class_counts(S, y) == {c: 30 for c in range(5)}
    assert torch.equal(S, pairsets.build_S(y, pool, 30, seed=0))
    sub = pairsets.build_S(y, pool, 10, seed=0, classes=[1, 3])
    assert pairsets.class_counts(sub, y) == {1: 10, 3: 10}


def test_S_rejects_near_duplicates():
    # Class 0 holds three images that are copies of one picture (cos ~ 1) and three distinct ones.
    y = torch.zeros(6, dtype=torch.long)
    feats = torch.tensor([[1.0, 0, 0], [1.0, 0.01, 0], [1.0, 0, 0.01], [0, 1.0, 0], [0, 0, 1.0], [0, 1.0, 1.0]])
    for seed in range(10):
        S = pairsets.build_S(y, torch.arange(6), 2, seed=seed, features=feats, dup_threshold=0.95)
        cos = (F.normalize(feats[S[:, 0]], dim=1) * F.normalize(feats[S[:, 1]], dim=1)).sum(1)
        assert len(S) == 2 and (cos <= 0.95).all() and len(torch.unique(S.flatten())) == 4
    # With only copies and one other image, a second pair cannot avoid duplicates.
    with pytest.raises(ConfigError, match="non-duplicate pairs"):
        pairsets.build_S(y[:4], torch.arange(4), 2, seed=0, features=feats[[0, 1, 2, 3]], dup_threshold=0.95)
    # dup_threshold None switches the cut off: the copies may now pair up.
    S = pairsets.build_S(y[:4], torch.arange(4), 2, seed=0, features=feats[[0, 1, 2, 3]], dup_threshold=None)
    assert len(S) == 2 and sorted(S.flatten().tolist()) == [0, 1, 2, 3]


def test_S_errors_name_the_class_and_the_fix():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    with pytest.raises(ConfigError, match=r"class 1 has 3 images .*pairs_per_class=2 needs 4"):
        pairsets.build_S(y, torch.arange(7), 2, seed=0)
    with pytest.raises(ConfigError, match=r"classes \[7\] have no image"):
        pairsets.build_S(y, torch.arange(7), 1, seed=0, classes=[0, 7])
    with pytest.raises(ConfigError, match="positive integer"):
        pairsets.build_S(y, torch.arange(7), 0, seed=0)
    with pytest.raises(ConfigError, match="features must be"):
        pairsets.build_S(y, torch.arange(7), 1, seed=0, features=torch.ones(3, 2))


def test_A_matches_S_with_N_images():
    y, pool = labelled()
    S = pairsets.build_S(y, pool, 20, seed=1)
    A = pairsets.build_A(S)
    assert A.shape == S.shape and (A[:, 0] == A[:, 1]).all()
    assert pairsets.class_counts(A, y) == pairsets.class_counts(S, y)
    assert set(A[:, 0].tolist()) == set(S[:, 0].tolist()) and len(torch.unique(A)) == len(S)


def test_A2_draws_N_pairs_per_epoch_from_exactly_the_2N_images_of_S():
    y, pool = labelled()
    S = pairsets.build_S(y, pool, 20, seed=1)
    a2 = pairsets.build_A2(S)
    assert len(a2) == len(S) and torch.equal(a2.images, torch.unique(S.flatten()))
    seen = set()
    for epoch in range(12):
        e = a2.for_epoch(7, epoch)
        assert e.shape == S.shape and (e[:, 0] == e[:, 1]).all()
        # One image of every S pair: N distinct images, S's class composition, every epoch.
        assert ((e[:, 0] == S[:, 0]) | (e[:, 0] == S[:, 1])).all()
        assert pairsets.class_counts(e, y) == pairsets.class_counts(S, y)
        assert torch.equal(e, a2.for_epoch(7, epoch))  # a pure function of (seed, epoch)
        seen |= set(e[:, 0].tolist())
    assert seen == set(S.flatten().tolist())  # over epochs A2 uses all 2N images, and only those
    assert not torch.equal(a2.for_epoch(7, 0), a2.for_epoch(7, 1))
    assert not torch.equal(a2.for_epoch(7, 0), a2.for_epoch(8, 0))


def test_M_matches_S_composition_and_count():
    y, pool = labelled()
    S = pairsets.build_S(y, pool, 20, seed=1)
    # Sampler output stand-in with false neighbours: same-label pairs mixed with random ones.
    mined = torch.cat([pairsets.oracle_pairs(y, pool, 900, seed=2), pairsets.random_pairs(pool, 600, seed=2)])
    M = pairsets.build_M(mined, y, S, seed=0)
    assert M.shape == S.shape
    assert pairsets.class_counts(M, y) == pairsets.class_counts(S, y)
    assert pair_set(M) <= pair_set(mined)
    assert 40 < pairsets.pair_precision(M, y) < 100  # false neighbours survive: that is what M measures
    assert torch.equal(M, pairsets.build_M(mined, y, S, seed=0))
    by_int = pairsets.build_M(mined, y, 20, seed=0, classes=torch.unique(y[S[:, 0]]))
    assert pairsets.class_counts(by_int, y) == pairsets.class_counts(S, y)
    assert pairsets.class_counts(pairsets.build_M(mined, y, {0: 3, 4: 5}, seed=0), y) == {0: 3, 4: 5}


def test_M_errors():
    y = torch.tensor([0, 0, 1, 1])
    mined = torch.tensor([[0, 1], [1, 0], [2, 3]])
    with pytest.raises(ConfigError, match=r"class 1 has 1 mined pairs, 2 needed; raise the sampler's k"):
        pairsets.build_M(mined, y, 2, seed=0)
    with pytest.raises(ConfigError, match="empty"):
        pairsets.build_M(torch.empty(0, 2, dtype=torch.long), y, 1, seed=0)
    with pytest.raises(ConfigError, match=r"\[N, 2\]"):
        pairsets.build_M(torch.tensor([1, 2, 3]), y, 1, seed=0)


# ---------------------------------------------------------------- PairSource

def test_pair_source_default_behaviour_is_unchanged():
    base = torch.arange(10)
    extra = torch.tensor([[0, 5], [1, 6], [2, 7]])
    add = PairSource(base, extra)  # mix='add'
    e = add.for_epoch(0, 0)
    expected = Counter([(i, i) for i in range(10)] + [(0, 5), (1, 6), (2, 7)])
    assert len(add) == 13 and Counter(map(tuple, e.tolist())) == expected
    assert torch.equal(e, add.for_epoch(0, 0)) and not torch.equal(e, add.for_epoch(0, 1))
    rep = PairSource(base, extra, mix="replace")
    assert len(rep) == 3 and pair_set(rep.for_epoch(0, 0)) == pair_set(extra)
    plain = PairSource(base)
    assert len(plain) == 10 and sorted(plain.for_epoch(3, 2)[:, 0].tolist()) == list(range(10))


def test_equal_steps_gives_the_base_length_deterministically():
    base = torch.arange(100)
    extra = pairsets.oracle_pairs(torch.arange(100) % 4, base, 60, seed=0)
    eq = PairSource(base, extra, mix="add", equal_steps=True)
    assert len(eq) == 100
    combined = Counter(map(tuple, torch.cat([torch.stack([base, base], 1), extra]).tolist()))
    for epoch in range(3):
        e = eq.for_epoch(5, epoch)
        assert e.shape == (100, 2) and torch.equal(e, eq.for_epoch(5, epoch))
        drawn = Counter(map(tuple, e.tolist()))
        assert all(drawn[p] <= combined[p] for p in drawn)  # without replacement from the 160 pairs
    assert not torch.equal(eq.for_epoch(5, 0), eq.for_epoch(5, 1))
    assert not torch.equal(eq.for_epoch(5, 0), eq.for_epoch(6, 0))
    # Fewer pairs than images ('replace' with a short list): the list is cycled evenly to the host's length.
    short = PairSource(base, extra[:30], mix="replace", equal_steps=True)
    e = short.for_epoch(1, 2)
    assert len(short) == 100 and len(e) == 100 and pair_set(e) <= pair_set(extra[:30])
    assert set(Counter(map(tuple, e.tolist())).values()) <= {3, 4}


def test_pair_source_with_the_epoch_dependent_A2_sampler():
    y, pool = labelled(200, classes=4)
    S = pairsets.build_S(y, pool, 10, seed=0)
    a2 = pairsets.build_A2(S)
    ps = PairSource(pool, None, mix="replace", epoch_extra=a2)
    assert len(ps) == len(S)
    for epoch in range(3):
        got, want = ps.for_epoch(2, epoch), a2.for_epoch(2, epoch)
        assert Counter(map(tuple, got.tolist())) == Counter(map(tuple, want.tolist()))
    assert not torch.equal(ps.for_epoch(2, 0), ps.for_epoch(2, 1))
    eq = PairSource(pool, None, mix="replace", epoch_extra=a2, equal_steps=True)
    assert len(eq) == len(pool) and len(eq.for_epoch(2, 0)) == len(pool)
    assert set(eq.for_epoch(2, 0)[:, 0].tolist()) <= set(S.flatten().tolist())
    mixed = PairSource(pool, S, mix="add", epoch_extra=a2)
    assert len(mixed) == len(pool) + 2 * len(S) == len(mixed.for_epoch(0, 4))


def test_pair_source_rejects_bad_input():
    base = torch.arange(5)
    with pytest.raises(ValueError, match="mix must be"):
        PairSource(base, mix="both")
    with pytest.raises(ValueError, match="replace"):
        PairSource(base, None, mix="replace")
    with pytest.raises(ValueError, match=r"\[M, 2\]"):
        PairSource(base, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="1-D"):
        PairSource(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="for_epoch"):
        PairSource(base, epoch_extra=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="equal_steps needs a non-empty"):
        PairSource(torch.tensor([], dtype=torch.long), torch.tensor([[0, 1]]), equal_steps=True)

    class Liar:  # reports 3 pairs, yields 2: the trainer would size its epochs wrongly
        def __len__(self):
            return 3

        def for_epoch(self, seed, epoch):
            return torch.tensor([[0, 0], [1, 1]])

    with pytest.raises(ValueError, match="reports len"):
        PairSource(base, epoch_extra=Liar()).for_epoch(0, 0)


# ---------------------------------------------------------------- variant M and partner masking

def variant_m_reference(q, keys, queue, pos_mask, tau, queue_mask=None, batch_negatives=False):
    """docs/science.md §1.2 variant M written as a loop over anchors and positives."""
    q, keys = F.normalize(q.double(), dim=1), F.normalize(keys.double(), dim=1)
    queue = queue.double()
    total = 0.0
    for a in range(q.shape[0]):
        cands = [keys[c] for c in range(keys.shape[0]) if batch_negatives or pos_mask[a, c]]
        cands += [queue[n] for n in range(queue.shape[0]) if queue_mask is None or not queue_mask[a, n]]
        den = sum(math.exp(float(q[a] @ c) / tau) for c in cands)
        pos = [p for p in range(keys.shape[0]) if pos_mask[a, p]]
        total += -sum(math.log(math.exp(float(q[a] @ keys[p]) / tau) / den) for p in pos) / len(pos)
    return total / q.shape[0]


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tau", [0.07, 0.2, 1.0])
def test_variant_m_without_partners_is_exactly_moco_infonce(tau):
    q, k = rand(8, 16, seed=1), rand(8, 16, seed=2)
    queue = F.normalize(rand(50, 16, seed=3), dim=1)
    eye = torch.eye(8, dtype=torch.bool)
    assert torch.allclose(multi_positive_infonce(q, k, queue, eye, tau), infonce_queue(q, k, queue, tau), atol=1e-6)
    qmask = rand(8, 50, seed=4) > 1.0
    assert torch.allclose(multi_positive_infonce(q, k, queue, eye, tau, qmask),
                          infonce_queue(q, k, queue, tau, qmask), atol=1e-6)


def test_variant_m_with_partners_matches_the_loop_reference():
    q, k = rand(6, 8, seed=5), rand(6, 8, seed=6)
    queue = F.normalize(rand(20, 8, seed=7), dim=1)
    ids = torch.tensor([0, 1, 2, 3, 4, 5])
    partners = PartnerIndex(torch.tensor([[0, 3], [1, 4], [4, 5]]), num_images=6)
    pos = (ids.view(-1, 1) == ids.view(1, -1)) | partners.lookup(ids, ids)
    assert pos.sum() == 6 + 6  # own keys plus three symmetric partnerships
    qmask = rand(6, 20, seed=8) > 0.8
    for bn in (False, True):
        for qm in (None, qmask):
            got = multi_positive_infonce(q, k, queue, pos, 0.2, qm, batch_negatives=bn).item()
            assert got == pytest.approx(variant_m_reference(q, k, queue, pos, 0.2, qm, bn), rel=1e-5)
    with pytest.raises(ValueError, match="pos_mask must be"):
        multi_positive_infonce(q, k, queue, pos[:3], 0.2)


def test_partner_mask_from_ids_and_a_queue_id_buffer():
    anchors = torch.tensor([0, 1, 2])
    queue_ids = torch.tensor([-1, 0, 3, 5, 1, 2, 7])  # -1: a slot that holds no image's key yet
    pairs = torch.tensor([[0, 3], [5, 1]])            # SPPS partners, given in one direction only
    expect = torch.tensor([
        [False, True, True, False, False, False, False],   # 0: own image, partner 3
        [False, False, False, True, True, False, False],   # 1: partner 5 (reverse direction), own image
        [False, False, False, False, False, True, False],  # 2: own image only
    ])
    assert torch.equal(mask_partners_as_negatives(anchors, queue_ids, pairs), expect)
    assert torch.equal(mask_partners_as_negatives(anchors, queue_ids, PartnerIndex(pairs, num_images=8)), expect)
    only_partners = expect & (anchors.view(-1, 1) != queue_ids.view(1, -1))
    assert torch.equal(mask_partners_as_negatives(anchors, queue_ids, pairs, same_image=False), only_partners)
    assert torch.equal(mask_partners_as_negatives(anchors, queue_ids, None), anchors.view(-1, 1) == queue_ids)
    assert not mask_partners_as_negatives(torch.tensor([-1]), torch.tensor([-1]), pairs).any()
    assert mask_partners_as_negatives(anchors, torch.tensor([], dtype=torch.long), pairs).shape == (3, 0)


def test_masked_infonce_equals_the_loss_without_those_queue_entries():
    q, k = rand(3, 8, seed=9), rand(3, 8, seed=10)
    queue = F.normalize(rand(7, 8, seed=11), dim=1)
    anchors, queue_ids = torch.tensor([0, 1, 2]), torch.tensor([-1, 0, 3, 5, 1, 2, 7])
    mask = mask_partners_as_negatives(anchors, queue_ids, torch.tensor([[0, 3], [5, 1]]))
    masked = infonce_queue(q, k, queue, 0.2, queue_mask=mask)
    per_anchor = [infonce_queue(q[a:a + 1], k[a:a + 1], queue[~mask[a]], 0.2) for a in range(3)]
    assert masked.item() == pytest.approx(torch.stack(per_anchor).mean().item(), rel=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_partner_mask_equals_a_brute_force_reference_on_random_ids(seed):
    """Random anchors/negatives with -1 slots and id 0, a pair list whose largest id sits in the pairs, the
    anchors or the negatives, and a single pair; against a set-membership loop."""
    g = torch.Generator().manual_seed(seed)
    n = 12
    anchors = torch.randint(-1, n, (5,), generator=g)
    negatives = torch.cat([torch.randint(-1, n, (9,), generator=g), torch.tensor([0, -1])])
    pairs = torch.randint(0, n, (1 if seed == 0 else 6, 2), generator=g)
    if seed % 3 == 1:
        pairs[0, 0] = n + 5  # the largest id only in the pairs
    elif seed % 3 == 2:
        anchors[0], negatives[0] = n + 3, n + 4  # ... only in the anchors and negatives
    known = {(int(i), int(j)) for i, j in pairs} | {(int(j), int(i)) for i, j in pairs}
    for same in (True, False):
        want = torch.tensor([[a >= 0 and b >= 0 and ((same and a == b) or (a, b) in known)
                              for b in negatives.tolist()] for a in anchors.tolist()])
        got = mask_partners_as_negatives(anchors, negatives, pairs, same_image=same)
        assert torch.equal(got, want), (seed, same)
        index = PartnerIndex(pairs, num_images=n + 6)
        assert torch.equal(mask_partners_as_negatives(anchors, negatives, index, same_image=same), want)


@pytest.mark.parametrize("anchors,negatives,pairs,want", [
    ([0], [3], [[0, 3]], True),             # a single pair is still looked up
    ([3], [0], [[0, 3]], True),             # the largest key (3, 0) is found
    ([3], [5, 11], [[2, 17]], False),       # 17 only in the pairs: 3*12+5 would equal the key 2*12+17
    ([2], [19], [[1, 5]], False),           # 19 only in the negatives: 2*6+19 would equal the key 5*6+1
])
def test_partner_mask_encodes_pairs_without_collisions(anchors, negatives, pairs, want):
    got = mask_partners_as_negatives(torch.tensor(anchors), torch.tensor(negatives), torch.tensor(pairs),
                                     same_image=False)
    assert bool(got[0, 0]) is want
