import pytest
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


def test_queue_starts_with_random_unit_keys_of_no_image_and_unknown_ids_stay_unknown():
    q = KeyQueue(size=5, dim=3)
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(5)) and q.ids.tolist() == [-1] * 5
    q.push(torch.ones(2, 3), torch.tensor([7, 8]))
    q.push(torch.ones(2, 3))  # keys without image ids: never masked as anyone's own image
    assert q.ids.tolist() == [7, 8, -1, -1, -1] and q.ids.dtype == torch.long


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


def _mocov2(**hp):
    from sempos.algos.mocov2 import MoCoV2
    from sempos.models.resnet import build_backbone

    torch.manual_seed(0)
    hp = {"queue_size": 16, "proj_hidden": 16, "proj_dim": 8, **hp}
    # Eval mode: BN uses running statistics, so keys computed here equal the step's own.
    return MoCoV2(build_backbone("resnet18_cifar", width=2, in_channels=1), hp, 100).eval()


def _step(m, symmetric):
    import torch.nn.functional as F

    from sempos.algos.base import Batch
    from sempos.losses import infonce_queue

    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.rand(4, 1, 16, 16, generator=g), torch.rand(4, 1, 16, 16, generator=g)
    a, b = torch.arange(4), torch.arange(4) + 10
    queue0 = m.queue.keys.clone()
    with torch.no_grad():
        k1, k2 = (F.normalize(m.projector_k(m.backbone_k(x)), dim=1) for x in (x1, x2))
        q1, q2 = (m.projector(m.backbone(x)) for x in (x1, x2))
        loss = m(x1, x2, Batch(a, b, 0, 0, 0.0))["loss"]
    if symmetric:
        expected = 0.5 * (infonce_queue(q1, k2, queue0, 0.2) + infonce_queue(q2, k1, queue0, 0.2))
        return loss, expected, torch.cat([k1, k2]), torch.cat([a, b])
    return loss, infonce_queue(q1, k2, queue0, 0.2), k2, b


@pytest.mark.parametrize("symmetric", [True, False])
def test_mocov2_queries_meet_the_other_views_key_and_enqueue_normalised_keys(symmetric):
    m = _mocov2(symmetric=symmetric)
    loss, expected, keys, ids = _step(m, symmetric)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    n = len(keys)
    assert torch.allclose(m.queue.keys[:n], keys, atol=1e-6)
    assert torch.allclose(m.queue.keys[:n].norm(dim=1), torch.ones(n), atol=1e-6)
    assert torch.equal(m.queue.ids[:n], ids) and (m.queue.ids[n:] == -1).all() and int(m.queue.ptr) == n
