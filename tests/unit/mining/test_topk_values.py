"""blocked_topk's edges by value: one-dimensional embeddings, k = N without self-exclusion, the CUDA check,
error messages naming the input, and check_rows' single chunked pass."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from sempos.errors import InvalidValueError
from sempos.mining.topk import blocked_topk, check_rows


def test_one_dimensional_embeddings_rank_by_sign():
    s, i = blocked_topk(torch.tensor([[1.0], [2.0], [-3.0]]), 1)
    assert s.tolist() == [[1.0], [1.0], [-1.0]] and i[:2].tolist() == [[1], [0]] and i[2, 0] in (0, 1)


def test_k_equal_to_n_is_allowed_when_an_item_may_be_its_own_neighbour():
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    s, i = blocked_topk(emb, 3, block_q=2, block_k=2, exclude_self=False)
    assert i.tolist() == [[0, 1, 2], [1, 2, 0], [2, 1, 0]]
    assert torch.allclose(s, torch.tensor([[1.0, 0.6, 0.0], [1.0, 0.8, 0.6], [1.0, 0.8, 0.0]]), atol=1e-6)
    with pytest.raises(InvalidValueError, match="between 1 and 3 for 3 items"):
        blocked_topk(emb, 4, exclude_self=False)


def test_asking_for_cuda_without_it_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", torch.device("cuda:0")):
        with pytest.raises(InvalidValueError, match="no CUDA device is available"):
            blocked_topk(torch.eye(3), 1, device=device)
    s, i = blocked_topk(torch.eye(3), 1, device="cpu")  # the CPU still works
    assert s.shape == (3, 1)


def test_bad_input_errors_name_what_was_given():
    with pytest.raises(InvalidValueError, match=r"got \(0, 8\)"):
        blocked_topk(torch.empty(0, 8), 1)
    with pytest.raises(InvalidValueError, match=r"got \(4, 0\)"):
        blocked_topk(torch.empty(4, 0), 1)
    with pytest.raises(InvalidValueError, match="got list"):
        blocked_topk([[1.0, 0.0], [0.0, 1.0]], 1)


class _Count(TorchFunctionMode):
    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is self.fn
        return func(*args, **(kwargs or {}))


def test_check_rows_is_one_pass_in_chunks_and_returns_inverse_norms():
    emb = torch.arange(1.0, 21.0).view(10, 2)
    with _Count(torch.isfinite) as probe:
        inv = check_rows(emb, 4, True)
    assert probe.calls == 3  # rows 0-3, 4-7, 8-9: every row checked once
    assert inv.dtype == torch.float32 and torch.allclose(inv, emb.norm(dim=1).reciprocal())
    assert check_rows(emb, 4, False) is None
