"""The trainer's bookkeeping pinned by value on a tiny run: which pairs, views and learning rate a step uses,
which checkpoints a run writes and when, the history rows, the backbone file's metadata."""

import math
import types

import pytest
import torch

import sempos.train.trainer as trainer_mod
from conftest import fake_prepared, tiny_settings
from sempos.augment import augment_batch
from sempos.config import digest
from sempos.errors import ConfigError
from sempos.eval.features import extract
from sempos.io import load_torch
from sempos.positives.pairs import PairSource
from sempos.runtime import resolve
from sempos.train.trainer import CHECKPOINT, HISTORY_FIELDS, PretrainJob, Trainer, history_csv

RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}
BASE_LR = 0.05 * 32 / 256  # pretrain.lr scaled by batch_size / 256


def _job(tmp_path, algo="simclr", epochs=2, n_train=128, data=None, pairs=True, **pretrain):
    """n_train 128: 96 pretraining images, 3 steps of 32 per epoch; pairs (i, a permutation of i)."""
    settings = tiny_settings(algo, epochs=epochs)
    settings["pretrain"].update(pretrain)
    data = data or fake_prepared(n_train=n_train)
    pool = data["splits"]["pretrain"]
    g = torch.Generator().manual_seed(1)
    source = PairSource(pool, torch.stack([pool, pool[torch.randperm(len(pool), generator=g)]], 1),
                        mix="replace") if pairs else None
    return PretrainJob(settings, 3, tmp_path / "run", data, pairs=source)


def _trainer(tmp_path, rt=None, **kw):
    return Trainer(_job(tmp_path, **kw), resolve({**RT, **(rt or {})}))


def _spy(t):
    seen = []
    model = t.model

    def wrapped(x1, x2, batch):
        seen.append((x1, x2, batch))
        return model(x1, x2, batch)

    t.wrapped = wrapped
    return seen


def test_a_step_trains_on_this_ranks_slice_with_its_own_augmentation_and_learning_rate(tmp_path):
    t = _trainer(tmp_path, warmup_epochs=1)  # 6 steps in all, the first 3 warm up
    t.rank, t.local_batch = 1, 16  # the second of two processes: rows 16..31 of every batch of 32
    seen = _spy(t)
    pairs = t.pairs.for_epoch(3, 1)
    assert not torch.equal(pairs[:, 0], pairs[:, 1])
    out = t._step(1, 2, pairs)  # global step 5
    x1, x2, batch = seen[0]
    mine = pairs[2 * 32 + 16: 3 * 32]
    assert torch.equal(batch.idx_a, mine[:, 0]) and torch.equal(batch.idx_b, mine[:, 1])
    assert (batch.epoch, batch.step, batch.progress) == (1, 2, 5 / 6)
    gen = torch.Generator().manual_seed(3 * 1_000_003 + 1 * 100_003 + 2 * 7 + 1 * 7_777_777 + 12345)
    assert torch.equal(x1, augment_batch(t.images[mine[:, 0]], t.aug, 28, gen, t.norm))
    assert torch.equal(x2, augment_batch(t.images[mine[:, 1]], t.aug, 28, gen, t.norm))  # same generator, next draws
    # after warm-up: half-cosine over the 3 remaining steps, 2 of them done
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(BASE_LR * 0.5 * (1 + math.cos(math.pi * 2 / 3)))
    assert out["loss"].dtype == torch.float32 and not out["loss"].requires_grad
    t._step(0, 1, pairs)
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(BASE_LR * 2 / 3)  # warm-up: step 2 of 3
    assert seen[1][2].progress == 1 / 6


def test_a_step_refuses_a_view_stream_out_of_step(tmp_path):
    t = _trainer(tmp_path)
    t._views = iter([(1, None)])
    with pytest.raises(RuntimeError, match="view stream at step 1, trainer at step 0"):
        t._step(0, 0, t.pairs.for_epoch(3, 0))


def test_fit_writes_checkpoints_history_and_backbone_by_value(tmp_path, monkeypatch):
    saved = []
    real_save = trainer_mod.save_torch
    monkeypatch.setattr(trainer_mod, "save_torch", lambda obj, path: saved.append((path.name, obj.get("epoch"),
                                                                                    obj.get("step"))) or real_save(obj, path))
    clock = iter([10.0, 10.4321, 20.0, 20.25])  # each epoch reads the clock twice
    monkeypatch.setattr(trainer_mod, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    t = _trainer(tmp_path, checkpoint_steps=2, knn_monitor=8)
    init_knn = _trainer(tmp_path / "fresh", knn_monitor=8).knn_monitor()  # the same seed: the same initial model
    logs = []
    real_step = t._step
    t._step = lambda *a: logs.append(real_step(*a)) or logs[-1]
    meta = t.fit()
    # within an epoch after every 2nd step but the last; at every epoch's end (epoch = the last complete one)
    assert saved == [(CHECKPOINT, -1, 2), (CHECKPOINT, 0, None), (CHECKPOINT, 0, 2), (CHECKPOINT, 1, None),
                     ("backbone.pt", None, None)]
    assert len(logs) == 6
    h = t.history
    assert [r["epoch"] for r in h] == [0, 1, 2] and [r["steps"] for r in h] == [0, 3, 6]
    assert h[0] == {"epoch": 0, "steps": 0, "loss": h[0]["loss"], "knn_top1": init_knn, "lr": 0.0, "seconds": 0.0,
                    "pairs_per_s": 0.0} and math.isnan(h[0]["loss"]) and 0 <= init_knn <= 100
    extras = sorted(set(logs[0]) - {"loss"})
    last_lr = (0.5 * (1 + math.cos(math.pi * 2 / 6)), 0.5 * (1 + math.cos(math.pi * 5 / 6)))
    for r, epoch_logs, secs, lr in ((h[1], logs[:3], 0.4321, last_lr[0]), (h[2], logs[3:], 0.25, last_lr[1])):
        assert list(r) == list(HISTORY_FIELDS) + extras
        assert r["loss"] == pytest.approx(sum(d["loss"].item() for d in epoch_logs) / 3)
        assert r["seconds"] == round(secs, 3) and r["pairs_per_s"] == round(96 / secs, 1)
        assert r["lr"] == pytest.approx(BASE_LR * lr)  # the last step's: global step 2 (of 6) and 5
    assert h[2]["knn_top1"] == t.knn_monitor()
    assert meta == {"arch": "resnet18_cifar", "width": 4, "in_channels": 1, "image_size": 28, "patch_size": None,
                    "frozen_patch_embed": False, "feat_dim": t.model.backbone.feat_dim,
                    "norm_mean": t.norm.mean.flatten().tolist(), "norm_std": t.norm.std.flatten().tolist(),
                    "method": "tiny_simclr", "algo": "simclr", "seed": 3}
    assert len(meta["norm_mean"]) == len(meta["norm_std"]) == 1
    written = load_torch(tmp_path / "run" / "backbone.pt")
    assert written["meta"] == meta
    state = t.model.backbone.state_dict()
    assert written["state_dict"].keys() == state.keys()
    assert all(torch.equal(written["state_dict"][k], state[k]) for k in state)
    assert (tmp_path / "run" / "history.csv").read_bytes().decode() == history_csv(h)
    final = load_torch(tmp_path / "run" / CHECKPOINT)
    assert final["epoch"] == 1 and "step" not in final and final["fingerprint"] == t.fingerprint


def test_without_checkpoint_steps_only_epoch_ends_are_saved(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(trainer_mod, "save_torch", lambda obj, path: saved.append((obj.get("epoch"), obj.get("step"))))
    monkeypatch.setattr(trainer_mod, "save_text", lambda *a: None)
    _trainer(tmp_path, epochs=1).fit()
    assert saved == [(0, None), (None, None)]


def test_a_batch_larger_than_the_pairs_trains_one_step_of_all_of_them(tmp_path):
    t = _trainer(tmp_path / "new", epochs=1, n_train=52)  # 20 pretraining images, batch_size 32; a new run dir's parents
    assert (t.batch, t.local_batch, t.steps_per_epoch, t.total_steps) == (20, 20, 1, 1)
    t.fit()
    assert [r["steps"] for r in t.history] == [0, 1] and math.isfinite(t.history[1]["loss"])


def _knn_top1_by_hand(t) -> float:
    """The monitor's score recomputed: the first 8 train images vote for the first 4 test images with weights
    exp(cos / 0.1), every bank image voting (k = 200 > 8), over the 10 classes of the labels."""
    data = t.job.data
    bank_idx = data["splits"]["train"][:8]
    bank = extract(t.model.backbone, data["train_x"][bank_idx], t.norm, "cpu")
    query = extract(t.model.backbone, data["test_x"][:4], t.norm, "cpu")
    weights = torch.exp(query @ bank.t() / 0.1)
    votes = weights @ torch.nn.functional.one_hot(data["train_y"][bank_idx], 10).float()
    return 100.0 * (votes.argmax(1) == data["test_y"][:4]).float().mean().item()


def test_a_method_that_does_not_train_writes_only_the_initial_history(tmp_path):
    t = _trainer(tmp_path, algo="none", epochs=3, pairs=False, knn_monitor=8)
    assert t.optimizer is None and t.wrapped is t.model
    meta = t.fit()
    (row,) = t.history
    assert row == {"epoch": 0, "steps": 0, "loss": row["loss"], "knn_top1": pytest.approx(_knn_top1_by_hand(t)),
                   "lr": 0.0, "seconds": 0.0, "pairs_per_s": 0.0} and math.isnan(row["loss"])
    assert meta == {"arch": "resnet18_cifar", "width": 4, "in_channels": 1, "image_size": 28, "patch_size": None,
                    "frozen_patch_embed": False, "feat_dim": t.model.backbone.feat_dim,
                    "norm_mean": t.norm.mean.flatten().tolist(), "norm_std": t.norm.std.flatten().tolist(),
                    "method": "tiny_none", "algo": "none", "seed": 3}
    written = load_torch(tmp_path / "run" / "backbone.pt")
    state = t.model.backbone.state_dict()
    assert written["meta"] == meta and written["state_dict"].keys() == state.keys()
    assert all(torch.equal(written["state_dict"][k], state[k]) for k in state)
    assert (tmp_path / "run" / "history.csv").read_bytes().decode() == history_csv(t.history)
    assert not (tmp_path / "run" / CHECKPOINT).exists()


def test_the_knn_monitor_scores_the_current_backbone_on_the_main_process_only(tmp_path, monkeypatch):
    t = _trainer(tmp_path, knn_monitor=8)
    assert t.knn_monitor() == pytest.approx(_knn_top1_by_hand(t))
    with torch.no_grad():  # another backbone, another score: the monitor reads the model it is given now
        for p in t.model.backbone.parameters():
            p.mul_(-1.0)
    assert t.knn_monitor() == pytest.approx(_knn_top1_by_hand(t))
    assert math.isnan(_trainer(tmp_path / "off").knn_monitor())  # knn_monitor: 0
    monkeypatch.setattr(trainer_mod.dist, "is_main", lambda: False)
    assert math.isnan(t.knn_monitor())


def test_fingerprint_names_settings_seed_pairs_and_data(tmp_path):
    data = {**fake_prepared(n_train=128), "content_sha256": "d" * 64}
    t = _trainer(tmp_path, data=data)
    s = t.job.settings
    assert t.fingerprint == digest({k: s[k] for k in ("algo", "hp", "pretrain", "augment", "backbone")}
                                   | {"seed": 3, "pairs": t.pairs.content_digest(), "data": "d" * 64})


def test_channels_last_runtime_lays_out_the_model_and_the_views_channels_last(tmp_path):
    data = fake_prepared(n_train=128)
    data["train_x"] = data["train_x"].repeat(1, 3, 1, 1)  # one channel is laid out the same either way
    t = _trainer(tmp_path, data=data, rt={"channels_last": True})
    conv = next(p for p in t.model.parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    seen = _spy(t)
    t._step(0, 0, t.pairs.for_epoch(3, 0))
    for x in seen[0][:2]:
        assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def test_compile_wraps_only_a_training_model(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module: ("compiled", module))  # torch.compile's import takes 3 s
    t = _trainer(tmp_path, rt={"compile": True})
    assert t.wrapped == ("compiled", t.model)
    none = _trainer(tmp_path, algo="none", pairs=False, rt={"compile": True})
    assert none.wrapped is none.model


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_mod.dist, "world_size", lambda: 3)
    with pytest.raises(ConfigError, match="batch_size 32 is not divisible by the 3 processes"):
        _trainer(tmp_path)


def test_history_csv_puts_the_fixed_columns_first_then_the_extras_sorted():
    rows = [{"epoch": 0, "steps": 0, "loss": 1.5, "knn_top1": 0.25, "lr": 0.0, "seconds": 0.0, "pairs_per_s": 0.0},
            {"epoch": 1, "steps": 3, "loss": 1.0, "knn_top1": 0.5, "lr": 0.1, "seconds": 2.0, "pairs_per_s": 48.0,
             "zeta": 7, "alpha": 3}]
    assert history_csv(rows) == ("epoch,steps,loss,knn_top1,lr,seconds,pairs_per_s,alpha,zeta\r\n"
                                 "0,0,1.5,0.25,0.0,0.0,0.0,,\r\n"
                                 "1,3,1.0,0.5,0.1,2.0,48.0,3,7\r\n")


class Killed(Exception):
    pass


def test_resume_restores_the_checkpoint_exactly_and_says_whether_it_did(tmp_path):
    fresh = _trainer(tmp_path, checkpoint_steps=2)
    assert fresh.try_resume() is False  # no checkpoint yet

    def kill(epoch, step):
        if step == 2:
            raise Killed

    first = Trainer(_job(tmp_path, checkpoint_steps=2), resolve(RT))
    first.job.on_step = kill
    with pytest.raises(Killed):
        first.fit()
    saved = load_torch(tmp_path / "run" / CHECKPOINT)
    assert (saved["epoch"], saved["step"], len(saved["epoch_logs"])) == (-1, 2, 2)
    torch.manual_seed(123)  # the resumed run's global RNG is the checkpoint's, not whatever it was
    t = _trainer(tmp_path, checkpoint_steps=2)
    assert t.try_resume() is True
    assert (t.start_epoch, t.start_step) == (0, 2) and repr(t.history) == repr(saved["history"])  # nan != nan
    assert torch.equal(torch.get_rng_state(), saved["torch_rng"])
    assert [{k: v.item() for k, v in d.items()} for d in t._resumed_logs] == \
        [{k: v.item() for k, v in d.items()} for d in saved["epoch_logs"]]
    state = t.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved["model"].items())
    assert t.optimizer.state_dict()["state"].keys() == saved["optimizer"]["state"].keys() != set()
    assert _trainer(tmp_path, checkpoint_steps=3).try_resume() is False  # other settings: from scratch


def test_two_processes_wrap_the_model_in_ddp_and_split_the_batch(tmp_path, monkeypatch):
    from torch.nn.parallel import DistributedDataParallel

    monkeypatch.setattr(trainer_mod.dist, "world_size", lambda: 2)  # a one-process group standing in for two
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        t = _trainer(tmp_path)
        assert isinstance(t.wrapped, DistributedDataParallel) and t.wrapped.module is t.model
        assert (t.world, t.rank, t.batch, t.local_batch) == (2, 0, 32, 16)
    finally:
        torch.distributed.destroy_process_group()


def test_a_step_on_streamed_views_augments_each_side_with_the_steps_generator(tmp_path):
    from sempos.augment import augment_crops

    t = _trainer(tmp_path)
    g = torch.Generator().manual_seed(0)
    views = torch.randint(0, 256, (32, 2, 1, 28, 28), dtype=torch.uint8, generator=g)  # as view_stream yields them
    t._views = iter([(1, views)])
    seen = _spy(t)
    t._step(0, 1, t.pairs.for_epoch(3, 0))
    x1, x2, _ = seen[0]
    gen = torch.Generator().manual_seed(3 * 1_000_003 + 0 * 100_003 + 1 * 7 + 12345)
    assert torch.equal(x1, augment_crops(views[:, 0], t.aug, gen, t.norm))
    assert torch.equal(x2, augment_crops(views[:, 1], t.aug, gen, t.norm))


def _stubbed_loop(tmp_path, monkeypatch, **pretrain):
    """A trainer whose steps, view stream, clock and writes are stand-ins that record what fit() asks of them."""
    saved, calls = [], []
    monkeypatch.setattr(trainer_mod, "save_torch", lambda obj, path: saved.append((obj.get("epoch"), obj.get("step"),
                                                                                    len(obj.get("epoch_logs", [])))))
    monkeypatch.setattr(trainer_mod, "save_text", lambda text, path: None)
    clock = iter(100 + 5.12345 * c for c in range(20))  # each epoch reads it twice: every epoch takes 5.12345 s
    monkeypatch.setattr(trainer_mod, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    t = _trainer(tmp_path, **pretrain)
    t.job.on_step = lambda epoch, step: calls.append(("on_step", epoch, step))

    def step(epoch, s, pairs):
        calls.append(("step", epoch, s, t._views))
        return {"loss": torch.tensor(10.0 * epoch + s), "purity": torch.tensor(float(s))}

    t._step = step
    return t, saved, calls


def test_fit_resumed_inside_an_epoch_runs_its_last_steps_with_the_saved_logs_then_whole_epochs(tmp_path, monkeypatch):
    """The loop alone (nothing trained): a resume at epoch 1 step 2 of 3 runs that epoch's last step, averages it
    with the two steps the checkpoint carried, then runs epoch 2 whole; each row by value."""
    t, saved, calls = _stubbed_loop(tmp_path, monkeypatch, epochs=3)
    t.start_epoch, t.start_step = 1, 2
    t._resumed_logs = [{"loss": torch.tensor(1.0), "purity": torch.tensor(0.0)},
                       {"loss": torch.tensor(2.0), "purity": torch.tensor(1.0)}]
    t.history = [{"epoch": 0}, {"epoch": 1}]
    lr = t.optimizer.param_groups[0]["lr"]
    t.fit()
    assert [c[1:3] for c in calls if c[0] == "step"] == [(1, 2), (2, 0), (2, 1), (2, 2)]
    assert [c for c in calls if c[0] == "on_step"] == [("on_step", 1, 2), ("on_step", 2, 0), ("on_step", 2, 1),
                                                        ("on_step", 2, 2)]
    rows = t.history[2:]
    assert [r["epoch"] for r in t.history] == [0, 1, 2, 3]
    assert rows[0] == {"epoch": 2, "steps": 6, "loss": pytest.approx((1 + 2 + 12) / 3), "knn_top1": rows[0]["knn_top1"],
                       "lr": lr, "seconds": 5.123, "pairs_per_s": 18.7, "purity": pytest.approx(1.0)}
    assert rows[1] == {"epoch": 3, "steps": 9, "loss": pytest.approx((20 + 21 + 22) / 3),
                       "knn_top1": rows[1]["knn_top1"], "lr": lr, "seconds": 5.123, "pairs_per_s": 18.7,
                       "purity": pytest.approx(1.0)}
    assert all(math.isnan(r["knn_top1"]) for r in rows)  # no monitor configured
    assert list(rows[0]) == list(HISTORY_FIELDS) + ["purity"]
    assert saved == [(1, None, 0), (2, None, 0), (None, None, 0)]  # each epoch's end, then the backbone


def test_fit_streams_each_epochs_views_from_its_first_step_and_drops_the_stream_after(tmp_path, monkeypatch):
    t, _, calls = _stubbed_loop(tmp_path, monkeypatch, epochs=2)
    t.encoded = True
    t.start_epoch, t.start_step = 0, 1
    t._resumed_logs = [{"loss": torch.tensor(1.0), "purity": torch.tensor(0.0)}]
    t.history = [{"epoch": 0}]
    streams = []
    t.view_stream = lambda epoch, pairs, first: streams.append((epoch, pairs, first)) or f"views of epoch {epoch}"
    t.fit()
    assert [(e, f) for e, _, f in streams] == [(0, 1), (1, 0)]
    assert all(torch.equal(p, t.pairs.for_epoch(t.job.seed, e)) for e, p, _ in streams)
    assert [c[3] for c in calls if c[0] == "step"] == ["views of epoch 0"] * 2 + ["views of epoch 1"] * 3
    assert t._views is None


def test_checkpoints_inside_an_epoch_come_after_every_nth_step_but_never_at_its_end(tmp_path, monkeypatch):
    """checkpoint_steps 3 over 6 steps: after step 3 (carrying its 3 logs), not after step 6 (the epoch's end saves)."""
    t, saved, _ = _stubbed_loop(tmp_path, monkeypatch, epochs=1, n_train=224, checkpoint_steps=3)
    assert t.steps_per_epoch == 6
    t.fit()
    assert saved == [(-1, 3, 3), (0, None, 0), (None, None, 0)]


def test_settings_without_a_knn_monitor_size_have_no_monitor(tmp_path):
    job = _job(tmp_path)
    del job.settings["pretrain"]["knn_monitor"]
    t = Trainer(job, resolve(RT))
    assert t._monitor is None and math.isnan(t.knn_monitor())


def test_the_model_is_built_for_the_datasets_image_size(tmp_path):
    """A CNN takes any size; a ViT is built for one (its patch grid and position embedding): 28 px, 4 px patches."""
    settings = tiny_settings("simclr")
    settings["backbone"] = {"arch": "vit_small"}
    vit = trainer_mod.build_model(settings, 1, 96, 3, 28).backbone.vit
    assert (vit.image_size, vit.patch_size) == (28, 4)
    job = _job(tmp_path)
    job.settings["backbone"] = {"arch": "vit_small"}
    assert Trainer(job, resolve(RT)).model.backbone.vit.image_size == 28  # the trainer passes the images' size


def test_the_model_is_told_how_many_images_it_trains_on(tmp_path, caplog):
    """The count sizes the warning about a bank that holds the anchors themselves: 96 pretraining images."""
    settings = tiny_settings("nnclr", bank_size=96)
    with caplog.at_level("WARNING", logger="sempos.algos.base"):
        assert trainer_mod.build_model(settings, 1, 96, 3).num_train == 96
        job = _job(tmp_path, algo="nnclr")
        job.settings["hp"]["bank_size"] = 96
        assert Trainer(job, resolve(RT)).model.num_train == 96
    assert [r.getMessage().split(", so")[0] for r in caplog.records] == [
        "nnclr: bank_size=96 holds every key an epoch pushes (96, from 96 training images)"] * 2
