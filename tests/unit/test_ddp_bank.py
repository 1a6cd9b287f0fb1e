"""Two gloo processes on CPU: the gathered bank is identical on both ranks and equals one process's bank
fed the global batch in rank order; per-GPU banks stay local; SNCLR's and MoCo-v3's gathered losses (each
rank's queries against every rank's keys, its positives at the rank's offset) are the global batch's."""

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sempos.algos.base import Batch
from sempos.algos.mocov3 import MoCoV3
from sempos.algos.snclr import SNCLR
from sempos.memory_bank import MemoryBank
from sempos.models.resnet import build_backbone

WORLD, ROWS, PUSHES, SIZE, DIM = 2, 3, 3, 10, 4  # 3 pushes of 2 x 3 rows wrap the 10-row bank
LOCAL_BATCH = 4
SNCLR_HP = {"proj_hidden": 16, "proj_dim": 8, "pred_hidden": 16, "bank_size": 32, "k": 2}


def _local_rows(rank, push):
    g = torch.Generator().manual_seed(1000 * rank + push)
    return torch.randn(ROWS, DIM, generator=g), torch.arange(ROWS) + 100 * rank + 10 * push


def _snclr():
    torch.manual_seed(0)
    m = SNCLR(build_backbone("resnet18_cifar", width=4, in_channels=1), SNCLR_HP, 64)
    g = torch.Generator().manual_seed(5)
    m.bank.push(torch.randn(32, SNCLR_HP["proj_dim"], generator=g))
    # Eval-mode BN normalises with running statistics, so one process and two give the same features.
    return m.eval()


def _mocov3():
    torch.manual_seed(0)
    hp = {k: SNCLR_HP[k] for k in ("proj_hidden", "proj_dim", "pred_hidden")}
    return MoCoV3(build_backbone("resnet18_cifar", width=4, in_channels=1), hp, 64).eval()


def _global_views():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(WORLD * LOCAL_BATCH, 1, 28, 28, generator=g)
    return x, x.flip(-1), torch.arange(WORLD * LOCAL_BATCH)


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    banks = {"global": MemoryBank(SIZE, DIM, scope="global"), "per_gpu": MemoryBank(SIZE, DIM, scope="per_gpu")}
    for push in range(PUSHES):
        z, ids = _local_rows(rank, push)  # different data on each rank
        for bank in banks.values():
            bank.push(z, ids=ids)
    m = _snclr()
    x1, x2, ids = _global_views()
    mine = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    with torch.no_grad():
        loss = m(x1[mine], x2[mine], Batch(ids[mine], ids[mine], 0, 0, 0.0))["loss"]
        loss_v3 = _mocov3()(x1[mine], x2[mine], Batch(ids[mine], ids[mine], 0, 0, 0.0))["loss"]
    torch.save({"banks": {k: b.state_dict() for k, b in banks.items()}, "snclr_bank": m.bank.state_dict(),
                "loss": loss, "loss_mocov3": loss_v3}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_bank")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


def test_gathered_bank_is_identical_on_both_ranks_and_in_rank_order(ranks):
    a, b = (r["banks"]["global"] for r in ranks)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    reference = MemoryBank(SIZE, DIM)
    for push in range(PUSHES):
        rows = [_local_rows(rank, push) for rank in range(WORLD)]
        reference.push(torch.cat([z for z, _ in rows]), ids=torch.cat([i for _, i in rows]))
    for k, v in reference.state_dict().items():
        assert torch.allclose(a[k].float(), v.float(), atol=1e-6), k
    assert int(a["ptr"]) == (PUSHES * WORLD * ROWS) % SIZE and int(a["filled"]) == SIZE


def test_per_gpu_banks_hold_only_their_own_rows(ranks):
    for rank, r in enumerate(ranks):
        reference = MemoryBank(SIZE, DIM, scope="per_gpu")
        for push in range(PUSHES):
            reference.push(*_local_rows(rank, push))
        assert torch.equal(r["banks"]["per_gpu"]["ids"], reference.ids)
    assert not torch.equal(ranks[0]["banks"]["per_gpu"]["bank"], ranks[1]["banks"]["per_gpu"]["bank"])


def test_snclr_loss_over_gathered_candidates_is_the_global_batch_loss(ranks):
    m = _snclr()
    x1, x2, ids = _global_views()
    with torch.no_grad():
        full = m(x1, x2, Batch(ids, ids, 0, 0, 0.0))["loss"]
    # Each rank averages over its own anchors against every rank's keys and neighbours.
    assert torch.allclose(torch.stack([r["loss"] for r in ranks]).mean(), full, atol=1e-5)
    for k, v in m.bank.state_dict().items():
        for r in ranks:
            assert torch.allclose(r["snclr_bank"][k].float(), v.float(), atol=1e-5), k


def test_mocov3_loss_over_gathered_keys_is_the_global_batch_loss(ranks):
    x1, x2, ids = _global_views()
    with torch.no_grad():
        full = _mocov3()(x1, x2, Batch(ids, ids, 0, 0, 0.0))["loss"]
    per_rank = torch.stack([r["loss_mocov3"] for r in ranks])
    # Rank 1's queries find their positives at keys 4..7: with offset 0 they would score rank 0's keys.
    assert torch.allclose(per_rank.mean(), full, atol=1e-5)
    assert not torch.allclose(per_rank[0], per_rank[1], atol=1e-3)
