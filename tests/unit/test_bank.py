import pytest
import torch
import torch.nn.functional as F

from sempos.memory_bank import MemoryBank


def test_fifo_order_and_wraparound_with_ids_and_labels():
    bank = MemoryBank(size=4, dim=2)
    v = F.normalize(torch.tensor([[1.0, 0], [0, 1.0], [1, 1.0]]), dim=1)
    bank.push(v, ids=torch.tensor([10, 11, 12]), labels=torch.tensor([0, 1, 1]))
    assert int(bank.ptr) == 3 and int(bank.filled) == 3
    assert torch.allclose(bank.bank[:3], v) and bank.ids[:3].tolist() == [10, 11, 12]
    w = F.normalize(torch.tensor([[1.0, -1], [-1.0, 0]]), dim=1)
    bank.push(w, ids=torch.tensor([13, 14]))
    assert int(bank.ptr) == 1 and int(bank.filled) == 4
    assert bank.ids.tolist() == [14, 11, 12, 13] and bank.labels.tolist() == [-1, 1, 1, -1]
    assert torch.allclose(bank.bank[0], w[1]) and torch.allclose(bank.bank[3], w[0])


def test_topk_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    bank = MemoryBank(size=64, dim=8)
    bank.push(torch.randn(64, 8, generator=g))
    q = torch.randn(5, 8, generator=g)
    s, i, vecs = bank.topk(q, 7)
    brute = F.normalize(q, dim=1) @ bank.bank.t()
    bs, bi = brute.topk(7, dim=1)
    assert torch.equal(i, bi) and torch.allclose(s, bs) and torch.equal(vecs, bank.bank[bi])


def test_purity_and_self_hit_rate():
    bank = MemoryBank(size=4, dim=2)
    bank.push(torch.eye(2).repeat(2, 1), ids=torch.tensor([0, 1, 2, 3]), labels=torch.tensor([5, 6, 5, -1]))
    idx = torch.tensor([[0, 2], [1, 3]])
    # anchor 0 (label 5): both neighbours label 5; anchor 1 (label 5): one label 6, one unlabelled
    assert bank.purity(torch.tensor([5, 5]), idx).item() == pytest.approx(2 / 3)
    assert bank.self_hit_rate(torch.tensor([2, 9]), idx).item() == 0.5


def test_state_dict_roundtrip():
    bank = MemoryBank(size=8, dim=3)
    bank.push(torch.randn(5, 3), ids=torch.arange(5))
    fresh = MemoryBank(size=8, dim=3)
    fresh.load_state_dict(bank.state_dict())
    for k, v in bank.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k
