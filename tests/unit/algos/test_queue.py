import torch

from sempos.algos.mocov2 import KeyQueue


def test_queue_fifo_order_and_wraparound():
    q = KeyQueue(size=5, dim=2)
    first = torch.arange(6, dtype=torch.float32).view(3, 2)  # rows 0,1,2
    q.push(first)
    assert int(q.ptr) == 3
    assert torch.equal(q.keys[:3], first)
    second = torch.arange(100, 108, dtype=torch.float32).view(4, 2)  # fills rows 3,4 then wraps to 0,1
    q.push(second)
    assert int(q.ptr) == 2
    assert torch.equal(q.keys[3], second[0]) and torch.equal(q.keys[4], second[1])
    assert torch.equal(q.keys[0], second[2]) and torch.equal(q.keys[1], second[3])
    assert torch.equal(q.keys[2], first[2])  # the oldest surviving key is untouched


def test_queue_push_larger_than_queue_keeps_newest():
    q = KeyQueue(size=3, dim=1)
    q.push(torch.arange(7, dtype=torch.float32).view(7, 1))
    assert sorted(q.keys.flatten().tolist()) == [4.0, 5.0, 6.0]


def test_queue_is_in_state_dict():
    q = KeyQueue(size=4, dim=2)
    q.push(torch.ones(2, 2))
    sd = q.state_dict()
    fresh = KeyQueue(size=4, dim=2)
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.keys, q.keys) and int(fresh.ptr) == 2
