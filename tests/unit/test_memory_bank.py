"""The shared top-K memory bank: FIFO order, exact retrieval, diagnostics, persistence, no host syncs."""

import io

import pytest
import torch
import torch.nn.functional as F
from conftest import HostSyncs

from sempos import dist
from sempos.memory_bank import MemoryBank


def _unit(rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_a_fresh_bank_holds_unit_rows_of_no_image_and_no_label_and_integer_counters():
    bank = MemoryBank(size=5, dim=3)
    assert torch.allclose(bank.bank.norm(dim=1), torch.ones(5))
    assert bank.ids.tolist() == [-1] * 5 and bank.labels.tolist() == [-1] * 5
    bank.push(torch.randn(2, 3))  # neither ids nor labels: both stored as unknown
    assert bank.ids.tolist() == [-1] * 5 and bank.labels.tolist() == [-1] * 5
    # the checkpoint's bookkeeping is integer: ids, labels, write pointer, fill count
    assert {k: v.dtype for k, v in bank.state_dict().items() if k != "bank"} == dict.fromkeys(
        ("ptr", "ids", "labels", "filled"), torch.long)
    assert int(bank.ptr) == 2 and int(bank.filled) == 2


def test_push_fills_in_fifo_order_and_wraps_around():
    bank = MemoryBank(size=4, dim=2)
    first = _unit([[1, 0], [0, 1], [1, 1]])
    bank.push(first, ids=torch.tensor([10, 11, 12]), labels=torch.tensor([0, 1, 1]))
    assert int(bank.ptr) == 3 and int(bank.filled) == 3
    assert torch.allclose(bank.bank[:3], first) and bank.ids[:3].tolist() == [10, 11, 12]

    second = _unit([[1, -1], [-1, 0]])
    bank.push(second, ids=torch.tensor([13, 14]))  # no labels given: they are stored as unknown
    # The fourth row takes the first new key; the second one overwrites the oldest row (0).
    assert int(bank.ptr) == 1 and int(bank.filled) == 4
    assert bank.ids.tolist() == [14, 11, 12, 13] and bank.labels.tolist() == [-1, 1, 1, -1]
    assert torch.allclose(bank.bank[3], second[0]) and torch.allclose(bank.bank[0], second[1])


def test_push_larger_than_the_bank_keeps_the_newest_rows():
    bank = MemoryBank(size=3, dim=2)
    bank.push(torch.randn(2, 2), ids=torch.tensor([0, 1]))
    bank.push(torch.randn(5, 2), ids=torch.arange(100, 105))
    # 2 + 5 pushes: the last 3 ids survive, written from the pointer (2) onwards.
    assert sorted(bank.ids.tolist()) == [102, 103, 104] and int(bank.ptr) == (2 + 3) % 3
    assert bank.ids.tolist() == [103, 104, 102]


def test_pushed_rows_are_unit_vectors_and_detached():
    bank = MemoryBank(size=8, dim=5)
    z = (3 * torch.randn(6, 5)).requires_grad_(True)
    bank.push(z)
    assert torch.allclose(bank.bank[:6].norm(dim=1), torch.ones(6))
    assert not bank.bank.requires_grad


def test_topk_equals_brute_force_cosine_search():
    g = torch.Generator().manual_seed(0)
    bank = MemoryBank(size=50, dim=8)
    bank.push(torch.randn(37, 8, generator=g))  # partly filled: the random initial rows are candidates too
    query = torch.randn(6, 8, generator=g) * 4
    sims, idx, vecs = bank.topk(query, 5)
    for n in range(query.shape[0]):
        cos = [float(F.cosine_similarity(query[n], bank.bank[j], dim=0)) for j in range(bank.size)]
        order = sorted(range(bank.size), key=lambda j: -cos[j])[:5]
        assert idx[n].tolist() == order
        assert torch.allclose(sims[n], torch.tensor([cos[j] for j in order]), atol=1e-6)
    assert torch.equal(vecs, bank.bank[idx]) and vecs.shape == (6, 5, 8)


def test_purity_ignores_unknown_labels_on_either_side():
    bank = MemoryBank(size=4, dim=2)
    bank.push(torch.randn(4, 2), labels=torch.tensor([5, 6, 5, -1]))
    idx = torch.tensor([[0, 2], [1, 3], [0, 1]])
    anchors = torch.tensor([5, 5, -1])
    # anchor 0: 2 of 2 share label 5; anchor 1: row 1 is label 6, row 3 unknown; anchor 2 has no label.
    assert bank.purity(anchors, idx).item() == pytest.approx(2 / 3)
    assert bank.purity(torch.tensor([-1]), idx[:1]).item() == 0.0  # nothing to count


def test_purity_counts_label_zero_and_a_single_valid_pair():
    bank = MemoryBank(size=4, dim=2)
    bank.push(torch.randn(4, 2), labels=torch.tensor([0, 1, 0, -1]))
    # class 0 is a real label: one known pair (anchor 0 -> row 0), which matches; row 3 is unknown
    assert bank.purity(torch.tensor([0, 1]), torch.tensor([[0], [3]])).item() == 1.0
    assert bank.purity(torch.tensor([1, 0]), torch.tensor([[0], [2]])).item() == 0.5


def test_self_hit_rate_counts_anchors_that_retrieve_their_own_image():
    bank = MemoryBank(size=4, dim=2)
    bank.push(torch.randn(4, 2), ids=torch.tensor([7, 8, 9, 10]))
    idx = torch.tensor([[0, 1], [2, 3], [1, 1]])
    assert bank.self_hit_rate(torch.tensor([8, 4, 7]), idx).item() == pytest.approx(1 / 3)


def test_state_dict_roundtrip_restores_every_buffer_and_later_pushes():
    g = torch.Generator().manual_seed(1)
    bank = MemoryBank(size=6, dim=3)
    bank.push(torch.randn(4, 3, generator=g), ids=torch.arange(4), labels=torch.tensor([0, 1, 0, 1]))
    buf = io.BytesIO()
    torch.save(bank.state_dict(), buf)
    buf.seek(0)
    fresh = MemoryBank(size=6, dim=3)
    fresh.load_state_dict(torch.load(buf))
    assert set(fresh.state_dict()) == {"bank", "ptr", "ids", "labels", "filled"}
    more = torch.randn(4, 3, generator=g)
    bank.push(more, ids=torch.arange(4, 8))
    fresh.push(more, ids=torch.arange(4, 8))
    for k, v in bank.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


def test_push_and_topk_never_read_values_back_to_the_host():
    bank = MemoryBank(size=16, dim=4)
    with HostSyncs() as mode:
        for _ in range(5):  # wraps around
            bank.push(torch.randn(6, 4), ids=torch.arange(6), labels=torch.arange(6) % 2)
        _, idx, _ = bank.topk(torch.randn(3, 4), 4)
        bank.purity(torch.tensor([0, 1, 0]), idx)
        bank.self_hit_rate(torch.tensor([0, 1, 2]), idx)
    assert mode.seen == []


def test_unknown_scope_is_rejected_and_gather_is_identity_on_one_process():
    with pytest.raises(ValueError, match="scope"):
        MemoryBank(4, 2, scope="cluster")
    t = torch.randn(3, 2)
    assert not dist.is_initialized() and dist.gather(t) is t
