"""Two gloo processes on CPU: DDP keeps weights and MoCo queues identical, one process writes outputs."""

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _worker(rank, world, init_file, run_dir, out_dir, algo):
    os.environ.update({"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1"})
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from conftest import fake_prepared, tiny_settings
    from sempos.runtime import resolve
    from sempos.train.trainer import PretrainJob, Trainer

    rt = resolve({"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False})
    hp = {"queue_size": 96} if algo == "mocov2" else {}
    trainer = Trainer(PretrainJob(tiny_settings(algo, epochs=1, **hp), 0, Path(run_dir), fake_prepared(n_train=160)), rt)
    assert trainer.local_batch == 16
    trainer.fit()
    torch.save({k: v.clone() for k, v in trainer.model.state_dict().items()}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("algo", ["simclr", "mocov2"])
def test_two_process_ddp_keeps_ranks_identical(tmp_path, algo):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "run"), str(tmp_path), algo), nprocs=2)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in a:
        if "running_" in k or "num_batches_tracked" in k:
            continue  # BN statistics are per process unless runtime.sync_bn
        assert torch.allclose(a[k], b[k]), k
    if algo == "mocov2":
        assert torch.equal(a["queue.keys"], b["queue.keys"]) and int(a["queue.ptr"]) == (2 * 4 * 32) % 96
    assert (tmp_path / "run" / "backbone.pt").exists() and (tmp_path / "run" / "history.csv").exists()
