"""BYOL, SimSiam, NNCLR, MoCo-v3 and SNCLR on a tiny network; SNCLR's switches; ViT-S; bank resume."""

import math

import jsonschema
import pytest
import torch

from conftest import HostSyncs, fake_prepared, tiny_settings
from sempos.algos import registry
from sempos.algos.base import Batch, ema_update
from sempos.algos.snclr import SNCLR
from sempos.config import load_schema
from sempos.errors import ConfigError
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


def snclr_reference(m, x1, x2, hp):
    """docs/science.md §2.4 / snclr.py's docstring: L(z1; k2) + L(z2; k1), each over all keys and neighbours.

    Neighbours of the other view's key by brute-force cosine over the bank; w = softmax of cosines with
    this view's projection (through f1/f2 when learnable), zeroed at or below 1/K with `threshold`, / gamma.
    """
    import torch.nn.functional as F

    from sempos.losses import snclr_code_loss, snclr_paper_loss

    y1, y2, z1, z2 = m.online(x1, x2)
    k1, k2 = m.keys(x1, x2)
    loss_fn = snclr_code_loss if hp["loss_form"] == "code_sum_of_logs" else snclr_paper_loss
    total = 0.0
    for z, y, k in ((z1, y1, k2), (z2, y2, k1)):
        kk = hp["k"]
        if kk:
            bank = F.normalize(m.bank.bank, dim=1)
            nb = m.bank.bank[(F.normalize(k, dim=1) @ bank.t()).argsort(1, descending=True)[:, :kk]]
            a, b = (m.attn.f1(y), m.attn.f2(nb)) if hp["attn_proj"] == "learnable" else (y, nb)
            w = torch.softmax(torch.einsum("bd,bkd->bk", F.normalize(a, dim=1), F.normalize(b, dim=2)), 1)
            if hp["threshold"]:
                w = torch.where(w > 1 / kk, w, torch.zeros_like(w))
            w = w / hp["attn_gamma"]
        else:
            nb, w = k.new_zeros(k.shape[0], 0, k.shape[1]), k.new_zeros(k.shape[0], 0)
        total += loss_fn(z, k, nb, w, hp["temperature"], hp["scale_2tau"]).item()
    return total


@pytest.mark.parametrize("hp", [
    {"loss_form": "paper_log_of_weighted_sum"}, {"attn_proj": "learnable"}, {"attn_gamma": 2.0},
    {"threshold": True}, {"detach_w": True}, {"scale_2tau": False}, {"bank_scope": "per_gpu"},
    {"pred_last_bn": False}, {"k": 0, "attn_proj": "learnable"},
])
def test_snclr_switches_give_the_loss_of_the_hand_wired_reference(hp):
    m = _model("snclr", **hp)
    _prefill(m)
    x1, x2 = _views()
    with torch.no_grad():
        expected = snclr_reference(m, x1, x2, {**SNCLR.HPARAMS, **SMALL["snclr"], **hp})
    loss = m(x1, x2, _batch())["loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []  # every trainable parameter is used (DDP would stall otherwise)


def test_snclr_switches_change_the_loss():
    """Each switch is wired: with the same weights, inputs and bank it gives another loss than the defaults."""
    def loss_of(**hp):
        m = _model("snclr", **hp)
        _prefill(m)
        with torch.no_grad():
            return m(*_views(), _batch())["loss"].item()

    base = loss_of()
    for hp in ({"loss_form": "paper_log_of_weighted_sum"}, {"attn_gamma": 2.0}, {"threshold": True},
               {"scale_2tau": False}, {"k": 1}):
        assert loss_of(**hp) != pytest.approx(base, rel=1e-4), hp
    assert loss_of(detach_w=True) == pytest.approx(base, rel=1e-6)  # detaching changes gradients only


@pytest.mark.parametrize("hp,bad", [({"loss_form": "mixed"}, "loss_form"), ({"attn_proj": "mlp"}, "attn_proj"),
                                    ({"bank_scope": "node"}, "bank_scope"), ({"k": 65}, "k=65")])
def test_snclr_rejects_unknown_switch_values(hp, bad):
    with pytest.raises(ConfigError, match=bad):
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
    y1 = m.online(x1, x2)[0]
    w = torch.softmax(torch.einsum("bd,bkd->bk", torch.nn.functional.normalize(y1, dim=1),
                                   torch.nn.functional.normalize(before.bank[idx], dim=2)), 1)
    assert out["w_max"].item() == pytest.approx(w.max(1).values.mean().item(), rel=1e-5)
    rows = torch.arange(B)  # the prefill wrapped the pointer to row 0
    assert torch.allclose(m.bank.bank[rows], torch.nn.functional.normalize(k2, dim=1), atol=1e-6)
    assert torch.equal(m.bank.ids[rows], batch.idx_b) and torch.equal(m.bank.labels[rows], m.diag_labels[:B])


def test_nnclr_logs_purity_and_self_hit_and_enqueues_view_one():
    m = _model("nnclr")
    m.diag_labels = torch.arange(100) % 3
    x1, x2 = _views()
    z1 = m.projector(m.backbone(torch.cat([x1, x2])))[:B].detach()
    out = m(x1, x2, _batch())
    assert {"purity", "self_hit"} <= set(out) and int(m.bank.filled) == B
    assert torch.equal(m.bank.ids[:B], torch.arange(B))
    assert torch.allclose(m.bank.bank[:B], torch.nn.functional.normalize(z1, dim=1), atol=1e-6)


def _nnclr_by_hand(k=1):
    """NNCLR with stand-in modules of known output: features = the 4 pixels, projector = identity,
    predictor = a fixed permutation (so a prediction differs from its projection), and a bank of the
    four unit vectors e0..e3 (ids 10..13)."""
    m = _model("nnclr", k=k, bank_size=4)
    m.backbone, m.projector = torch.nn.Flatten(), torch.nn.Identity()
    m.predictor = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        m.predictor.weight.copy_(torch.eye(4)[[1, 2, 3, 0]])
    m.bank = MemoryBank(4, 4)
    m.bank.push(torch.eye(4), ids=torch.arange(10, 14))
    # View 1 of the two images lies nearest e0 and e1, view 2 nearest e2 and e3.
    x1 = torch.tensor([[0.9, 0.1, 0.3, 0.0], [0.2, 0.8, 0.0, 0.1]]).view(2, 1, 2, 2)
    x2 = torch.tensor([[0.1, 0.0, 0.9, 0.4], [0.0, 0.3, 0.2, 0.7]]).view(2, 1, 2, 2)
    return m, x1, x2


def test_nnclr_pairs_each_views_neighbour_with_the_other_views_prediction(monkeypatch):
    from sempos.algos import nnclr as nnclr_module
    from sempos.losses import nnclr_loss

    calls = []
    monkeypatch.setattr(nnclr_module, "nnclr_loss", lambda nn, p, t: calls.append((nn, p)) or nnclr_loss(nn, p, t))
    m, x1, x2 = _nnclr_by_hand()
    z1, z2 = x1.flatten(1), x2.flatten(1)
    p1, p2 = m.predictor(z1), m.predictor(z2)
    e = torch.eye(4)
    loss = m(x1, x2, Batch(torch.arange(2), torch.arange(2), 0, 0, 0.0))["loss"]
    # nn(z1) = (e0, e1) is the positive of view 2's predictions, nn(z2) = (e2, e3) of view 1's.
    (nn_a, p_a), (nn_b, p_b) = calls
    assert torch.equal(nn_a, e[[0, 1]]) and torch.equal(nn_b, e[[2, 3]])
    assert torch.equal(p_a, p2) and torch.equal(p_b, p1)
    expected = 0.5 * (nnclr_loss(e[[0, 1]], p2, 0.1) + nnclr_loss(e[[2, 3]], p1, 0.1))
    own_view = 0.5 * (nnclr_loss(e[[0, 1]], p1, 0.1) + nnclr_loss(e[[2, 3]], p2, 0.1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert abs(expected.item() - own_view.item()) > 0.1  # the wrong pairing would be seen
    # The bank then holds view 1's projections (normalised) in the two oldest rows, with their image ids.
    assert torch.allclose(m.bank.bank[:2], torch.nn.functional.normalize(z1, dim=1))
    assert m.bank.ids.tolist() == [0, 1, 12, 13]


# By cosine, view 1's image 0 lies nearest e0, then e2, then e1; image 1 nearest e1, then e0, then e3.
@pytest.mark.parametrize("k,nearest", [(2, ((0, 2), (1, 0))), (3, ((0, 2, 1), (1, 0, 3)))])
def test_nnclr_k_picks_one_of_the_k_nearest_from_the_global_rng(monkeypatch, k, nearest):
    from sempos.algos import nnclr as nnclr_module

    picked = []
    monkeypatch.setattr(nnclr_module, "nnclr_loss", lambda nn, p, t: picked.append(nn.argmax(1)) or nn.sum())
    m, x1, x2 = _nnclr_by_hand(k=k)
    batch = Batch(torch.arange(2), torch.arange(2), 0, 0, 0.0)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        m.bank.bank.copy_(torch.eye(4))  # undo the step's push
        m(x1, x2, batch)
        rows = picked[-2].tolist()  # view 1's neighbours
        assert rows[0] in nearest[0] and rows[1] in nearest[1]
        seen.add(tuple(rows))
        torch.manual_seed(seed)
        m.bank.bank.copy_(torch.eye(4))
        m(x1, x2, batch)
        assert picked[-2].tolist() == rows  # a function of the global RNG's state
    assert {r[0] for r in seen} == set(nearest[0])


def test_nnclr_k1_takes_the_nearest_without_drawing_from_the_global_rng():
    m, x1, x2 = _nnclr_by_hand(k=1)
    state = torch.get_rng_state()
    nn1, idx = m._neighbour(x1.flatten(1))
    assert torch.equal(torch.get_rng_state(), state)  # K = 1 is deterministic: other random draws are unmoved
    assert idx.tolist() == [[0], [1]] and torch.equal(nn1, torch.eye(4)[[0, 1]])


def test_nnclr_diagnostics_score_each_anchors_own_neighbour():
    m, x1, x2 = _nnclr_by_hand(k=1)
    m.bank.labels.copy_(torch.tensor([0, 1, 2, 0]))
    m.diag_labels = torch.zeros(14, dtype=torch.long)
    m.diag_labels[13] = 2
    # Anchors 10 and 13 retrieve bank rows 0 (id 10, label 0) and 1 (id 11, label 1): one self hit,
    # one label match. (Against the whole bank anchor 13 would find its id and label 2 elsewhere.)
    out = m(x1, x2, Batch(torch.tensor([10, 13]), torch.tensor([10, 13]), 0, 0, 0.0))
    assert out["self_hit"].item() == 0.5 and out["purity"].item() == 0.5


@pytest.mark.parametrize("algo,k_min", [("nnclr", 1), ("snclr", 0)])
def test_neighbour_count_may_be_anything_from_its_minimum_to_the_bank_size(algo, k_min):
    for k in (k_min, 64):
        assert _model(algo, k=k).hp["k"] == k
    for k in (k_min - 1, 65):
        with pytest.raises(ConfigError, match=f"k={k} must lie in"):
            _model(algo, k=k)


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


def _kill_and_resume(tmp_path, algo, **hp):
    data = fake_prepared(n_train=96)  # 64 pretraining images: 2 steps of 32 per epoch
    # A bank larger than one epoch's 64 pushes, so epoch 0's rows must come back from the checkpoint.
    settings = tiny_settings(algo, epochs=2, **{**SMALL[algo], "bank_size": 96, **hp})
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
    return straight.model.state_dict(), resumed.model.state_dict()


@pytest.mark.parametrize("algo,hp", [("nnclr", {}), ("snclr", {}), ("nnclr", {"k": 3})])
def test_bank_survives_kill_and_resume(tmp_path, algo, hp):
    """NNCLR k = 3 draws its neighbour from torch's global RNG, so it also needs that state restored."""
    a, b = _kill_and_resume(tmp_path, algo, **hp)
    assert a.keys() == b.keys() and {"bank.bank", "bank.ptr", "bank.ids", "bank.labels"} <= set(a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (int(b["bank.filled"]), int(b["bank.ptr"])) == (96, 128 % 96) and (b["bank.labels"] >= 0).all()


def test_resume_without_the_global_rng_state_would_differ(tmp_path, monkeypatch):
    """The k = 3 case above can fail: a trainer that does not restore torch's RNG gives other weights."""
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    a, b = _kill_and_resume(tmp_path, "nnclr", k=3)
    assert [k for k in a if not torch.equal(a[k], b[k])]


def test_snclr_learnable_attention_applies_the_threshold():
    m = _model("snclr", attn_proj="learnable", threshold=True)
    g = torch.Generator().manual_seed(4)
    y, nb = torch.randn(5, 16, generator=g), torch.randn(5, 3, 16, generator=g)
    with torch.no_grad():
        w = m._weights(y, nb)
        unthresholded = m.attn(y, nb, threshold=False)
    # softmax over K = 3: every row has a weight at or below 1/3, which the threshold zeroes
    assert ((w == 0).sum(1) >= 1).all() and (w > 0).any()
    assert torch.equal(w, torch.where(unthresholded > 1 / 3, unthresholded, torch.zeros_like(w)))


def test_snclr_without_neighbours_gives_the_loss_empty_neighbour_sets_of_its_shapes(monkeypatch):
    from sempos.algos import snclr as snclr_module

    shapes = []
    real = snclr_module.snclr_code_loss
    monkeypatch.setattr(snclr_module, "snclr_code_loss",
                        lambda z, keys, nb, w, *a, **kw: shapes.append((tuple(nb.shape), tuple(w.shape)))
                        or real(z, keys, nb, w, *a, **kw))
    b = 6  # != proj_dim, so [B, K, D] cannot be confused with [D, K, D]
    _model("snclr", k=0)(*_views(b=b), _batch(b=b))
    assert shapes == [((b, 0, 16), (b, 0))] * 2  # neighbours [B, K, D], weights [B, K] with K = 0


@pytest.mark.parametrize("scope,rows", [("global", 8), ("per_gpu", 4)])
def test_snclr_bank_scope_decides_whether_pushes_are_gathered(monkeypatch, scope, rows):
    from sempos import dist

    m = _model("snclr", bank_scope=scope)
    monkeypatch.setattr(dist, "gather", lambda t: torch.cat([t, t]))  # two processes with equal rows
    m.bank.push(torch.randn(4, 16), ids=torch.arange(4))
    assert int(m.bank.ptr) == rows and m.bank.ids[:rows].tolist() == (list(range(4)) * 2)[:rows]
