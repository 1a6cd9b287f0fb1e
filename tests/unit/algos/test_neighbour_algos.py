"""BYOL, SimSiam, NNCLR, MoCo-v3 and SNCLR on a tiny network; SNCLR's switches; ViT-S; bank resume."""

import math

import jsonschema
import pytest
import torch

from conftest import HostSyncs, fake_prepared, tiny_settings
from sempos.algos import registry
from sempos.algos.base import Batch, ema_update
from sempos.config import load_schema
from sempos.memory_bank import MemoryBank
from sempos.models.resnet import build_backbone
from sempos.models.vit import sincos_2d
from sempos.runtime import resolve
from sempos.train.trainer import PretrainJob, Trainer

NEW = ("byol", "simsiam", "nnclr", "mocov3", "snclr")
HEADS = {"proj_hidden": 32, "proj_dim": 16, "pred_hidden": 32}
SMALL = {"byol": HEADS, "simsiam": HEADS, "mocov3": HEADS, "nnclr": {**HEADS, "bank_size": 64},
         "snclr": {**HEADS, "bank_size": 64, "k": 3}}
RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}
B = 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These networks are tiny: a second intra-op thread only adds synchronisation, which on a busy
    # machine costs more than the work itself.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(algo, backbone=None, **hp):
    torch.manual_seed(0)
    backbone = backbone or build_backbone("resnet18_cifar", width=4, in_channels=1)
    return registry.get(algo)(backbone, {**SMALL[algo], **hp}, 100)


def _views(b=B, size=28, channels=1, seed=1):
    """Two noisy copies of the same images (a fixed stand-in for two augmentations)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, channels, size, size, generator=g)
    return x + 0.1 * torch.randn(x.shape, generator=g), x + 0.1 * torch.randn(x.shape, generator=g)


def _batch(step=0, b=B):
    ids = torch.arange(b)
    return Batch(ids, ids, 0, step, step / 10)


def _prefill(model, n=64, seed=2):
    g = torch.Generator().manual_seed(seed)
    model.bank.push(torch.randn(n, model.hp["proj_dim"], generator=g), ids=torch.arange(n) % 40,
                    labels=torch.arange(n) % 3)


@pytest.mark.parametrize("algo", NEW)
def test_each_algorithm_trains_on_a_tiny_resnet_and_its_loss_decreases(algo):
    m = _model(algo)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    x1, x2 = _views()
    init = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    losses = []
    for step in range(6):  # the trainer's order: step, then EMA of the momentum branch
        loss = m(x1, x2, _batch(step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if m.momentum_pairs():
            ema_update(m.momentum_pairs(), m.ema_momentum(step / 6))
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0], losses
    assert any(not torch.equal(init[k], v) for k, v in m.backbone.state_dict().items())


def test_every_new_algorithm_is_registered_and_its_defaults_validate_against_the_schema():
    schema = load_schema()
    method = jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/method"})
    assert set(NEW) <= set(registry.ALGOS) <= set(schema["$defs"]["method"]["properties"]["algo"]["enum"])
    for algo in NEW:
        method.validate({"algo": algo, **registry.get(algo).HPARAMS})
    assert "vit_small" in schema["properties"]["backbone"]["properties"]["arch"]["enum"]


def test_snclr_without_neighbours_is_mocov3():
    x1, x2 = _views()
    snclr = _model("snclr", k=0)(x1, x2, _batch())["loss"]
    mocov3 = _model("mocov3")(x1, x2, _batch())["loss"]
    assert torch.allclose(snclr, mocov3, atol=1e-6)


@pytest.mark.parametrize("hp", [
    {"loss_form": "paper_log_of_weighted_sum"}, {"attn_proj": "learnable"}, {"attn_gamma": 2.0},
    {"threshold": True}, {"detach_w": True}, {"scale_2tau": False}, {"bank_scope": "per_gpu"},
    {"pred_last_bn": False}, {"k": 0, "attn_proj": "learnable"},
])
def test_snclr_switches_train(hp):
    m = _model("snclr", **hp)
    _prefill(m)
    loss = m(*_views(), _batch())["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []  # every trainable parameter is used (DDP would stall otherwise)


@pytest.mark.parametrize("hp,bad", [({"loss_form": "mixed"}, "loss_form"), ({"attn_proj": "mlp"}, "attn_proj"),
                                    ({"bank_scope": "node"}, "bank_scope"), ({"k": 65}, "k=65")])
def test_snclr_rejects_unknown_switch_values(hp, bad):
    with pytest.raises(ValueError, match=bad):
        _model("snclr", **hp)


@pytest.mark.parametrize("attn", ["identity", "learnable"])
def test_snclr_weights_carry_gradient_into_the_online_projector_unless_detached(attn):
    grads = {}
    for detach in (False, True):
        m = _model("snclr", attn_proj=attn, detach_w=detach)
        _prefill(m)
        m(*_views(), _batch())["loss"].backward()
        grads[detach] = torch.cat([p.grad.flatten() for p in m.projector.parameters()])
        if m.attn is not None:
            assert all((p.grad is None) == detach for p in m.attn.parameters())
    # Same weights, inputs and bank: the only difference is the gradient path through w.
    assert not torch.allclose(grads[False], grads[True])


def test_snclr_step_logs_diagnostics_that_match_the_bank_and_then_enqueues_k2():
    m = _model("snclr")
    _prefill(m)
    m.diag_labels = torch.arange(100) % 3
    x1, x2 = _views()
    batch = _batch()
    before = MemoryBank(m.bank.size, m.hp["proj_dim"])
    before.load_state_dict(m.bank.state_dict())
    _, k2 = m.keys(x1, x2)
    _, idx, _ = before.topk(k2, m.hp["k"])
    with HostSyncs() as syncs:
        out = m(x1, x2, batch)
    assert syncs.seen == []  # no per-step host round trip, diagnostics included
    assert out["purity"].item() == pytest.approx(before.purity(m.diag_labels[batch.idx_b], idx).item())
    assert out["self_hit"].item() == pytest.approx(before.self_hit_rate(batch.idx_b, idx).item())
    assert 1 / m.hp["k"] - 1e-6 <= out["w_max"].item() <= 1
    rows = torch.arange(B)  # the prefill wrapped the pointer to row 0
    assert torch.allclose(m.bank.bank[rows], torch.nn.functional.normalize(k2, dim=1), atol=1e-6)
    assert torch.equal(m.bank.ids[rows], batch.idx_b) and torch.equal(m.bank.labels[rows], m.diag_labels[:B])


def test_nnclr_logs_purity_and_self_hit_and_enqueues_view_one():
    m = _model("nnclr")
    m.diag_labels = torch.arange(100) % 3
    out = m(*_views(), _batch())
    assert {"purity", "self_hit"} <= set(out) and int(m.bank.filled) == B
    assert torch.equal(m.bank.ids[:B], torch.arange(B))


def test_vit_small_is_moco_v3s_vit_s_and_dispatches_from_build_backbone():
    bb = build_backbone("vit_small", in_channels=1, image_size=28, patch_size=4, frozen_patch_embed=True)
    assert (bb.feat_dim, bb.in_channels) == (384, 1)
    layers = bb.vit.encoder.layers
    assert len(layers) == 12 and layers[0].self_attention.num_heads == 12
    pos = bb.vit.encoder.pos_embedding
    assert not pos.requires_grad and torch.equal(pos[0, 0], torch.zeros(384))
    assert torch.equal(pos[0, 1:], sincos_2d(7, 384))
    out = bb(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 384)
    out.sum().backward()
    assert all(p.grad is None for p in bb.vit.conv_proj.parameters())
    assert bb.vit.encoder.layers[0].mlp[0].weight.grad is not None
    rgb = build_backbone("vit_small", in_channels=3, image_size=32)  # patch 4 picked for small images
    assert rgb(torch.randn(1, 3, 32, 32)).shape == (1, 384)
    with pytest.raises(ValueError, match="multiple"):
        build_backbone("vit_small", in_channels=1, image_size=28, patch_size=16)


def test_snclr_trains_a_vit_small_backbone():
    bb = build_backbone("vit_small", in_channels=1, image_size=28, patch_size=4, frozen_patch_embed=True)
    m = _model("snclr", backbone=bb, k=2)
    _prefill(m)
    loss = m(*_views(b=4), _batch(b=4))["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    assert m.backbone.vit.encoder.ln.weight.grad is not None


@pytest.mark.parametrize("algo", ["nnclr", "snclr"])
def test_bank_survives_kill_and_resume(tmp_path, algo):
    data = fake_prepared(n_train=96)  # 64 pretraining images: 2 steps of 32 per epoch
    # A bank larger than one epoch's 64 pushes, so epoch 0's rows must come back from the checkpoint.
    settings = tiny_settings(algo, epochs=2, **{**SMALL[algo], "bank_size": 96})
    straight = Trainer(PretrainJob(settings, 0, tmp_path / "straight", data), resolve(RT))
    straight.fit()

    def kill(epoch, step):
        if epoch == 1 and step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(PretrainJob(settings, 0, tmp_path / "resumed", data, on_step=kill), resolve(RT)).fit()
    resumed = Trainer(PretrainJob(settings, 0, tmp_path / "resumed", data), resolve(RT))
    resumed.fit()
    assert resumed.start_epoch == 1
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and {"bank.bank", "bank.ptr", "bank.ids", "bank.labels"} <= set(a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (int(b["bank.filled"]), int(b["bank.ptr"])) == (96, 128 % 96) and (b["bank.labels"] >= 0).all()
