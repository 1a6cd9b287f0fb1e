"""Trainer.budget(): the compute every comparison table reports (optimiser steps, pairs seen, the kNN monitor)."""

import pytest
import torch

from conftest import fake_prepared, tiny_settings
from sempos.errors import ConfigError
from sempos.runtime import resolve
from sempos.train.trainer import PretrainJob, Trainer

RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}


def _trainer(tmp_path, algo="simclr", epochs=2, knn_monitor=0):
    settings = tiny_settings(algo, epochs=epochs)
    settings["pretrain"]["knn_monitor"] = knn_monitor
    return Trainer(PretrainJob(settings, 0, tmp_path / algo, fake_prepared()), resolve(RT))


def test_budget_counts_full_batches_only_and_names_the_monitor_sizes(tmp_path):
    t = _trainer(tmp_path, epochs=2, knn_monitor=20)  # 224 pretraining images, batch 32
    assert t.budget() == {"epochs": 2, "batch_size": 32, "pairs_per_epoch": 224, "steps_per_epoch": 7,
                          "optimizer_steps": 14, "pairs_seen": 448, "monitor_bank": 20, "monitor_queries": 10}


def test_monitor_takes_the_first_train_images_and_at_least_one_query(tmp_path):
    data = fake_prepared()
    t = _trainer(tmp_path, knn_monitor=1)
    bx, by, qx, qy = t._monitor
    first = data["splits"]["train"][:1]
    assert torch.equal(bx, data["train_x"][first]) and torch.equal(by, data["train_y"][first])
    assert torch.equal(qx, data["test_x"][:1]) and torch.equal(qy, data["test_y"][:1])
    assert t.budget()["monitor_queries"] == 1
    assert _trainer(tmp_path, knn_monitor=0)._monitor is None


def test_a_method_that_does_not_train_has_no_budget(tmp_path):
    b = _trainer(tmp_path, algo="none", epochs=3).budget()
    assert (b["epochs"], b["steps_per_epoch"], b["optimizer_steps"], b["pairs_seen"]) == (0, 0, 0, 0)
    assert b["pairs_per_epoch"] == 224 and b["monitor_bank"] == 0 and b["monitor_queries"] == 0


def test_ddp_wrapper_keeps_buffers_local_and_has_no_device_ids_on_the_cpu(tmp_path, monkeypatch):
    from torch.nn.parallel import DistributedDataParallel

    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        t = Trainer(PretrainJob(tiny_settings("simclr"), 0, tmp_path / "run", fake_prepared()), resolve(RT))
        ddp = t._wrap_ddp()
        assert isinstance(ddp, DistributedDataParallel) and ddp.module is t.model
        assert ddp.broadcast_buffers is False and ddp.device_ids is None
        assert ddp.find_unused_parameters is type(t.model).ddp_find_unused is False
        kinds = {type(m) for m in t.model.modules()}
        assert torch.nn.BatchNorm2d in kinds and torch.nn.SyncBatchNorm not in kinds
        # an algorithm whose step leaves parameters unused declares it, and DDP is told
        monkeypatch.setattr(type(t.model), "ddp_find_unused", True)
        assert t._wrap_ddp().find_unused_parameters is True
        # SyncBatchNorm is CUDA-only in torch: on the CPU the run stops with the setting to change
        t.rt = resolve({**RT, "sync_bn": True})
        with pytest.raises(ConfigError, match="runtime.sync_bn"):
            t._wrap_ddp()
    finally:
        torch.distributed.destroy_process_group()
