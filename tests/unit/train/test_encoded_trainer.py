"""The trainer on encoded (JPEG) data: killed mid-epoch and resumed it ends with the same weights as an
uninterrupted run; the weights do not depend on the loader's workers or decode path; under DDP each rank
decodes only its own slice of every batch."""

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import encoded_prepared, tiny_settings

from sempos.data import loader
from sempos.data.prepare import load_prepared
from sempos.runtime import resolve
from sempos.train.trainer import CHECKPOINT, PretrainJob, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False,
      "loader_workers": 0, "decode": "cpu"}


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return encoded_prepared(tmp_path_factory.mktemp("enc"), per_class=12, val_per_class=2, val_size=0)


def _settings(algo="simclr", epochs=2, **hp):
    s = tiny_settings(algo, epochs=epochs, **hp)
    s["pretrain"].update(batch_size=16, knn_monitor=8, checkpoint_steps=1)
    return s


def _run(settings, run_dir, index, on_step=None, **rt):
    trainer = Trainer(PretrainJob(settings, 1, run_dir, load_prepared(index), on_step=on_step), resolve({**RT, **rt}))
    trainer.fit()
    return trainer


def _same(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _run_killed_in_epoch_1_after_2_steps(settings, run_dir, index):
    def kill(epoch, step):
        if epoch == 1 and step == 2:
            raise Killed

    with pytest.raises(Killed):
        _run(settings, run_dir, index, on_step=kill)


@pytest.mark.parametrize("algo,hp", [("simclr", {}), ("mocov2", {"queue_size": 32})])
def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tmp_path, index, algo, hp):
    settings = _settings(algo, **hp)
    straight = _run(settings, tmp_path / "straight", index)
    assert straight.steps_per_epoch == 3
    _run_killed_in_epoch_1_after_2_steps(settings, tmp_path / "resumed", index)
    state = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)
    assert (state["epoch"], state["step"]) == (0, 2)  # inside epoch 1, after 2 of its 3 steps
    assert not (tmp_path / "resumed" / "backbone.pt").exists()
    resumed = _run(settings, tmp_path / "resumed", index)
    assert (resumed.start_epoch, resumed.start_step) == (1, 2)
    _same(straight, resumed)
    assert [h["loss"] for h in straight.history] [1:] == [h["loss"] for h in resumed.history][1:]
    assert [h["knn_top1"] for h in straight.history] == [h["knn_top1"] for h in resumed.history]


def test_a_resume_inside_an_early_epoch_runs_the_later_epochs_whole(tmp_path, index):
    """Only the epoch that was cut short starts at the saved step and carries its logs; the next starts at 0."""
    settings = _settings(epochs=3)
    straight = _run(settings, tmp_path / "straight", index)
    _run_killed_in_epoch_1_after_2_steps(settings, tmp_path / "resumed", index)
    resumed = _run(settings, tmp_path / "resumed", index)
    assert (resumed.start_epoch, resumed.start_step) == (1, 2)
    _same(straight, resumed)
    assert [h["steps"] for h in resumed.history] == [h["steps"] for h in straight.history]
    assert [h["loss"] for h in straight.history][1:] == [h["loss"] for h in resumed.history][1:]


def test_weights_do_not_depend_on_workers_or_decode_path(tmp_path, index):
    settings = _settings(epochs=1)
    base = _run(settings, tmp_path / "w0", index)
    _same(base, _run(settings, tmp_path / "w2", index, loader_workers=2))
    _same(base, _run(settings, tmp_path / "dev", index, decode="device"))
    loader.configure(workers=0, decode="cpu")


def _ddp_worker(rank, world, init_file, index, out_dir):
    os.environ.update({"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1"})
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from sempos.data.shards import ShardTable

    read = []
    real = ShardTable.read
    ShardTable.read = lambda self, row: read.append(int(row)) or real(self, row)
    settings = _settings(epochs=1)
    settings["pretrain"]["knn_monitor"] = 0
    trainer = Trainer(PretrainJob(settings, 1, Path(out_dir) / "run", load_prepared(index)), resolve(RT))
    trainer.fit()
    pairs = trainer.pairs.for_epoch(1, 0)
    mine = [pairs[s * 16 + rank * 8: s * 16 + rank * 8 + 8] for s in range(trainer.steps_per_epoch)]
    torch.save({"state": trainer.model.state_dict(), "read": read,
                "mine": torch.cat(mine).flatten().tolist()}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_decode_only_their_slice(tmp_path, index):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(index), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for r in (r0, r1):
        assert sorted(set(r["read"])) == sorted(set(r["mine"]))  # augmented pairs: (i, i), one read per step
    assert not set(r0["read"]) & set(r1["read"])
    for k, v in r0["state"].items():
        if "running_" not in k and "num_batches_tracked" not in k:
            assert torch.allclose(v, r1["state"][k]), k


def test_view_stream_yields_this_ranks_slice_of_each_step_cropped_with_its_geometry_seed(tmp_path, index):
    from sempos.data.jpeg import CropSpec
    from sempos.train.trainer import geometry_seed

    trainer = Trainer(PretrainJob(_settings(epochs=3), 5, tmp_path / "run", load_prepared(index)), resolve(RT))
    trainer.rank, trainer.local_batch = 1, 8  # the second of two processes: rows 8..15 of every batch of 16
    pairs = trainer.pairs.for_epoch(5, 2)
    plan = [(geometry_seed(5, 2, s, 1), pairs[s * 16 + 8: s * 16 + 16]) for s in range(3)]
    want = list(loader.crop_stream(trainer.images, plan, CropSpec.of(trainer.aug), trainer.size, trainer.rt.device))
    got = list(trainer.view_stream(2, pairs))  # from step 0 by default
    assert [s for s, _ in got] == [0, 1, 2]
    for (_, views), ref in zip(got, want):
        assert views.shape == (8, 2, 3, 32, 32) and torch.equal(views, ref)
    resumed = list(trainer.view_stream(2, pairs, first_step=2))
    assert len(resumed) == 1 and resumed[0][0] == 2 and torch.equal(resumed[0][1], want[2])
