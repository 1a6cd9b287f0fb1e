"""Every algorithm trains on a tiny network; SNCLR's switches; banks survive kill-and-resume and DDP."""

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import fake_prepared, tiny_settings
from sempos.algos import registry
from sempos.algos.base import Batch
from sempos.models.resnet import build_backbone
from sempos.runtime import resolve
from sempos.train.trainer import PretrainJob, Trainer

RT = {"device": "cpu", "threads": 2, "precision": "fp32", "channels_last": False, "progress": False}
SMALL = {"byol": {}, "simsiam": {}, "nnclr": {"bank_size": 64}, "mocov3": {},
         "snclr": {"bank_size": 64, "k": 3}, "simclr": {}, "mocov2": {"queue_size": 64}}


def _model(algo, **hp):
    torch.manual_seed(0)
    return registry.get(algo)(build_backbone("resnet18_cifar", 4, 1), {**SMALL.get(algo, {}), **hp}, 100)


def _step(model, b=16):
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(b, 1, 28, 28, generator=g), torch.randn(b, 1, 28, 28, generator=g)
    ids = torch.arange(b)
    return model(x1, x2, Batch(ids, ids, 0, 0, 0.0))


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_each_algorithm_trains_and_loss_goes_down(tmp_path, algo):
    data = fake_prepared(n_train=288)
    t = Trainer(PretrainJob(tiny_settings(algo, epochs=3, **SMALL[algo]), 0, tmp_path, data), resolve(RT))
    init = {k: v.clone() for k, v in t.model.backbone.state_dict().items()}
    t.fit()
    losses = [h["loss"] for h in t.history[1:]]
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(init[k], v) for k, v in t.model.backbone.state_dict().items())
    if algo not in ("mocov2", "nnclr", "snclr"):
        # Queue/bank methods see harder negatives as their memory fills, so only these must go down.
        assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("hp", [
    {"loss_form": "paper_log_of_weighted_sum"}, {"attn_proj": "learnable"}, {"threshold": True},
    {"k": 0}, {"scale_2tau": False}, {"bank_scope": "per_gpu"},
])
def test_snclr_switches_run(hp):
    out = _step(_model("snclr", **hp))
    assert torch.isfinite(out["loss"])
    out["loss"].backward()


def test_snclr_weights_carry_gradient_into_projector_unless_detached():
    def projector_grad_from_weights(detach):
        m = _model("snclr", detach_w=detach)
        m.bank.push(torch.randn(64, 128))
        y = torch.randn(8, 128, requires_grad=True)
        nb = m.bank.topk(torch.randn(8, 128), 3)[2]
        w = m._weights(y, nb)
        return w.requires_grad
    assert projector_grad_from_weights(False) is True
    assert projector_grad_from_weights(True) is False


def test_snclr_logs_diagnostics_and_fills_bank():
    m = _model("snclr")
    m.diag_labels = torch.zeros(100, dtype=torch.long)
    out = _step(m)
    assert {"w_max", "self_hit", "purity"} <= set(out)
    assert int(m.bank.filled) == 16 and (m.bank.ids[:16] >= 0).all()


def test_vit_small_backbone_forward_and_frozen_patch_embedding():
    bb = build_backbone("vit_small", in_channels=1, image_size=28, patch_size=4, frozen_patch_embed=True)
    assert bb(torch.randn(2, 1, 28, 28)).shape == (2, 384) and bb.feat_dim == 384
    assert not any(p.requires_grad for p in bb.vit.conv_proj.parameters())


@pytest.mark.parametrize("algo", ["nnclr", "snclr"])
def test_bank_survives_kill_and_resume(tmp_path, algo):
    data = fake_prepared(n_train=192)
    settings = tiny_settings(algo, epochs=2, **SMALL[algo])
    straight = Trainer(PretrainJob(settings, 0, tmp_path / "a", data), resolve(RT))
    straight.fit()

    def kill(epoch, step):
        if epoch == 1 and step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(PretrainJob(settings, 0, tmp_path / "b", data, on_step=kill), resolve(RT)).fit()
    resumed = Trainer(PretrainJob(settings, 0, tmp_path / "b", data), resolve(RT))
    resumed.fit()
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert int(resumed.model.bank.filled) > 0


def _ddp_bank_worker(rank, world, init_file, out_dir):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    from sempos.memory_bank import MemoryBank

    bank = MemoryBank(size=12, dim=4)
    g = torch.Generator().manual_seed(100 + rank)  # rank-local data differs
    for _ in range(2):
        bank.push(torch.randn(4, 4, generator=g), ids=torch.arange(4) + 10 * rank)
    torch.save(bank.state_dict(), Path(out_dir) / f"bank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_process_gloo_bank_is_identical_on_both_ranks(tmp_path):
    mp.spawn(_ddp_bank_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    a, b = torch.load(tmp_path / "bank0.pt"), torch.load(tmp_path / "bank1.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # rank order: each push holds rank 0's 4 rows then rank 1's
    # each push writes rank 0's 4 rows then rank 1's; the second push wraps around the 12 rows
    assert a["ids"].tolist() == [10, 11, 12, 13, 10, 11, 12, 13, 0, 1, 2, 3] and int(a["ptr"]) == 16 % 12
