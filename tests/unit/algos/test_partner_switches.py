"""The SePP partner switches (variant M -> multi_positive, mask_partners): constructor arguments that each
algorithm declares in SWITCHES, the config check reading the same declaration, and which entries the
masks remove, by index, in SimCLR, MoCo-v2 and through the trainer."""

import inspect

import pytest
import torch

from conftest import fake_prepared, tiny_settings
from sempos.algos import mocov2 as mocov2_module
from sempos.algos import registry
from sempos.algos import simclr as simclr_module
from sempos import config
from sempos.algos.base import Batch, partner_switches
from sempos.config import deep_merge, validate
from sempos.errors import ConfigError
from sempos.models.resnet import build_backbone
from sempos.positives.pairs import PairSource
from sempos.positives.partners import PartnerIndex
from sempos.runtime import resolve
from sempos.train.trainer import PretrainJob, Trainer

HEADS = {"proj_hidden": 16, "proj_dim": 8}
PARTNERS = [(1, 3), (2, 4), (4, 9)]  # known SPPS pairs (symmetric); 9 is never in the batch
# A batch of 4 pairs: three augmented (i, i) and the extra pair (2, 4).
A, B = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 4, 3])


class Recorder:
    """Wraps a loss function; records each call's arguments by name."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        bound = inspect.signature(self.fn).bind(*args, **kwargs)
        bound.apply_defaults()
        self.calls.append(dict(bound.arguments))
        return self.fn(*args, **kwargs)


def _index(pairs=PARTNERS, n=10):
    return PartnerIndex(torch.tensor(pairs), n)


def _model(algo, **kw):
    torch.manual_seed(0)
    hp = {**HEADS, "queue_size": 6} if algo == "mocov2" else dict(HEADS)
    return registry.get(algo)(build_backbone("resnet18_cifar", width=2, in_channels=1), hp, 10, **kw).eval()


def _views(n=4):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 16, 16, generator=g), torch.rand(n, 1, 16, 16, generator=g)


def _bool(n_rows, n_cols, true):
    m = torch.zeros(n_rows, n_cols, dtype=torch.bool)
    for i, j in true:
        m[i, j] = True
    return m


def test_switches_are_declared_by_simclr_and_mocov2_only():
    both = frozenset({"multi_positive", "mask_partners"})
    assert {name: cls.SWITCHES for name, cls in registry.ALGOS.items() if cls.SWITCHES} == \
        {"simclr": both, "mocov2": both}
    m = _model("mocov2", partners=_index(), multi_positive=True, mask_partners=True)
    assert (m.multi_positive, m.mask_partners) == (True, True) and m.partners is not None
    plain = _model("simclr")
    assert (plain.multi_positive, plain.mask_partners, plain.partners) == (False, False, None)
    assert partner_switches({"variant": "M"}) == {"multi_positive": True, "mask_partners": False}
    assert partner_switches(None) == {"multi_positive": False, "mask_partners": False}


@pytest.mark.parametrize("algo", ["byol", "simsiam", "nnclr", "mocov3", "snclr", "none"])
@pytest.mark.parametrize("switch,key", [("multi_positive", "variant: M"), ("mask_partners", "mask_partners")])
def test_an_unsupported_switch_is_a_config_error_naming_it(algo, switch, key):
    bb = build_backbone("resnet18_cifar", width=2, in_channels=1)
    with pytest.raises(ConfigError, match=f"algo '{algo}' does not implement positives.{key}") as err:
        registry.get(algo)(bb, {}, 10, partners=_index(), **{switch: True})
    assert "implemented by" not in str(err.value)  # the constructor alone does not know the registry
    with pytest.raises(ConfigError, match=r"implemented by: mocov2, simclr"):
        registry.get(algo).check_switches({switch: True}, "", registry.ALGOS.values())


def test_a_switch_without_a_partner_index_is_a_config_error():
    with pytest.raises(ConfigError, match="need a partner index"):
        _model("simclr", mask_partners=True)
    with pytest.raises(ConfigError, match="unknown partner switches"):
        registry.get("simclr").check_switches({"mask_partner": True})


def _params(positives, algo="byol"):
    import yaml

    from conftest import REPO

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return deep_merge(base, {"methods": {"x": {"algo": algo, "positives": positives}}})


def test_config_check_reads_the_same_declaration(monkeypatch):
    variant_m = {"source": "oracle", "variant": "M"}
    with pytest.raises(ConfigError, match=r"methods.x: algo 'byol' does not implement positives.variant: M; .*"
                                          r"implemented by: mocov2, simclr"):
        validate(_params(variant_m))
    validate(_params(variant_m, algo="mocov2"))
    # One declaration: the config's copy (params are checked without importing algorithms) is the classes'.
    assert config.ALGO_SWITCHES == {name: cls.SWITCHES for name, cls in registry.ALGOS.items() if cls.SWITCHES}
    monkeypatch.setitem(config.ALGO_SWITCHES, "byol", frozenset({"multi_positive"}))
    validate(_params(variant_m))
    with pytest.raises(ConfigError, match="does not implement positives.mask_partners"):
        validate(_params({"source": "random", "mask_partners": True}))


@pytest.mark.parametrize("src", ["augment", "study_s"])
def test_switches_need_an_extra_pair_list(src):
    with pytest.raises(ConfigError, match=f"mask_partners: true needs an extra pair list .* not source {src}"):
        validate(_params({"source": src, "mask_partners": True}, algo="simclr"))


# ---------------------------------------------------------------- which entries the masks remove

# The 2N = 8 views of A, B are [a0..a3, b0..b3] with image ids [0, 1, 2, 3, 0, 1, 4, 3].
# Same image: (0, 4), (1, 5), (3, 7); partners 1~3: views {1, 5} x {3, 7}; partners 2~4: (2, 6).
RELATED = [(0, 4), (1, 5), (3, 7), (1, 3), (1, 7), (5, 3), (5, 7), (2, 6)]
RELATED = RELATED + [(j, i) for i, j in RELATED] + [(i, i) for i in range(8)]


def test_simclr_mask_partners_removes_same_image_and_partner_views_from_the_negatives(monkeypatch):
    rec = Recorder(simclr_module.nt_xent)
    monkeypatch.setattr(simclr_module, "nt_xent", rec)
    m = _model("simclr", partners=_index(), mask_partners=True)
    x1, x2 = _views()
    loss = m(x1, x2, Batch(A, B, 0, 0, 0.0))["loss"]
    (call,) = rec.calls
    assert torch.equal(call["neg_mask"], _bool(8, 8, RELATED))
    # The loss keeps every anchor's positive (its partner view) and drops exactly the masked negatives.
    z = torch.nn.functional.normalize(torch.cat([call["z1"], call["z2"]]), dim=1)
    sim = z @ z.t() / call["temperature"]
    ref = 0.0
    for i in range(8):
        pos = (i + 4) % 8
        keep = [j for j in range(8) if j == pos or (i, j) not in RELATED]
        ref += -(sim[i, pos] - torch.logsumexp(sim[i, keep], 0))
    assert loss.item() == pytest.approx(ref.item() / 8, rel=1e-5)
    unmasked = _model("simclr")(x1, x2, Batch(A, B, 0, 0, 0.0))["loss"]
    assert rec.calls[-1]["neg_mask"] is None and not torch.isclose(unmasked, loss)


def test_simclr_variant_m_makes_partner_views_positives(monkeypatch):
    rec = Recorder(simclr_module.multi_positive_nt_xent)
    monkeypatch.setattr(simclr_module, "multi_positive_nt_xent", rec)
    _model("simclr", partners=_index(), multi_positive=True)(*_views(), Batch(A, B, 0, 0, 0.0))
    (call,) = rec.calls
    views = [(i, (i + 4) % 8) for i in range(8)]  # each view's own partner view is always a positive
    assert torch.equal(call["pos_mask"], _bool(8, 8, RELATED + views))


# Queue of 6 keys from images [0, 3, -1, 4, 9, 1] (-1: an initial random key of no image).
QUEUE_IDS = torch.tensor([0, 3, -1, 4, 9, 1])
# Anchors A = [0, 1, 2, 3]: 0 -> its own older key (col 0); 1 -> own (5) + partner 3 (1);
# 2 -> partner 4 (3); 3 -> own (1) + partner 1 (5). Anchors B = [0, 1, 4, 3]: 4 -> own (3) + partner 9 (4).
QMASK_A = _bool(4, 6, [(0, 0), (1, 5), (1, 1), (2, 3), (3, 1), (3, 5)])
QMASK_B = _bool(4, 6, [(0, 0), (1, 5), (1, 1), (2, 3), (2, 4), (3, 1), (3, 5)])


def _mocov2_step(monkeypatch, fn_name, **switches):
    rec = Recorder(getattr(mocov2_module, fn_name))
    monkeypatch.setattr(mocov2_module, fn_name, rec)
    m = _model("mocov2", partners=_index(), **switches)
    m.queue.ids.copy_(QUEUE_IDS)
    queue0 = m.queue.keys.clone()
    m(*_views(), Batch(A, B, 0, 0, 0.0))
    return rec.calls, queue0


def test_mocov2_mask_partners_removes_own_and_partner_keys_from_the_queue(monkeypatch):
    calls, queue0 = _mocov2_step(monkeypatch, "infonce_queue", mask_partners=True)
    assert len(calls) == 2  # symmetric: q1 against k2, q2 against k1
    assert torch.equal(calls[0]["queue_mask"], QMASK_A) and torch.equal(calls[1]["queue_mask"], QMASK_B)
    assert all(torch.equal(c["queue"], queue0) for c in calls)  # the queue before this step's push


def test_mocov2_variant_m_positives_are_the_keys_of_the_same_image_or_a_partner(monkeypatch):
    calls, _ = _mocov2_step(monkeypatch, "multi_positive_infonce", multi_positive=True)
    # q of A against keys of B = [0, 1, 4, 3]: same image on the diagonal except (2, 4), a partner pair;
    # partners 1~3 also pair rows 1 and 3 across.
    pos = _bool(4, 4, [(0, 0), (1, 1), (2, 2), (3, 3), (1, 3), (3, 1)])
    assert torch.equal(calls[0]["pos_mask"], pos) and torch.equal(calls[1]["pos_mask"], pos.t())
    assert calls[0]["queue_mask"] is None  # variant M alone leaves the queue whole


def test_mocov2_variant_m_with_mask_partners_also_masks_the_queue(monkeypatch):
    calls, _ = _mocov2_step(monkeypatch, "multi_positive_infonce", multi_positive=True, mask_partners=True)
    assert torch.equal(calls[0]["queue_mask"], QMASK_A) and torch.equal(calls[1]["queue_mask"], QMASK_B)


def test_mocov2_one_sided_step_masks_by_the_query_ids_and_enqueues_the_key_ids(monkeypatch):
    """symmetric False: queries of side A only, against keys of side B (ids B) and the queue."""
    rec = Recorder(mocov2_module.multi_positive_infonce)
    monkeypatch.setattr(mocov2_module, "multi_positive_infonce", rec)
    torch.manual_seed(0)
    m = mocov2_module.MoCoV2(build_backbone("resnet18_cifar", width=2, in_channels=1),
                             {**HEADS, "queue_size": 6, "symmetric": False}, 10, partners=_index(),
                             multi_positive=True, mask_partners=True).eval()
    m.queue.ids.copy_(QUEUE_IDS)
    m(*_views(), Batch(A, B, 0, 0, 0.0))
    (call,) = rec.calls
    assert torch.equal(call["pos_mask"], _bool(4, 4, [(0, 0), (1, 1), (2, 2), (3, 3), (1, 3), (3, 1)]))
    assert torch.equal(call["queue_mask"], QMASK_A)
    assert m.queue.ids.tolist() == B.tolist() + QUEUE_IDS[4:].tolist() and int(m.queue.ptr) == 4


# ---------------------------------------------------------------- through the trainer

RT = {"device": "cpu", "threads": 1, "precision": "fp32", "channels_last": False, "progress": False}


def _hand_related(a, b, pairs):
    ids = torch.cat([a, b]).tolist()
    known = {(i, j) for i, j in pairs} | {(j, i) for i, j in pairs}
    return torch.tensor([[x == y or (x, y) in known for y in ids] for x in ids])


@pytest.mark.parametrize("pos", [{"source": "random", "mask_partners": True}, {"source": "random"}])
def test_trainer_passes_the_partner_switches_to_the_algorithm(tmp_path, monkeypatch, pos):
    data = fake_prepared(n_train=96)
    pool = data["splits"]["pretrain"]
    extra = torch.stack([pool, pool.roll(1)], 1)  # every image partners its neighbour in id order
    pairs = extra.tolist()
    rec = Recorder(simclr_module.nt_xent)
    monkeypatch.setattr(simclr_module, "nt_xent", rec)
    settings = tiny_settings("simclr", epochs=1, **HEADS)
    job = PretrainJob(settings, 0, tmp_path, data, pairs=PairSource(pool, extra), partners=_index(pairs, 96),
                      positives_cfg=pos)
    t = Trainer(job, resolve(RT))
    assert t.model.mask_partners is bool(pos.get("mask_partners")) and t.model.multi_positive is False
    assert t.model.partners is job.partners
    order = t.pairs.for_epoch(0, 0)
    t._step(0, 0, order)
    (call,) = rec.calls
    if pos.get("mask_partners"):
        batch = order[: t.batch]
        expected = _hand_related(batch[:, 0], batch[:, 1], pairs)
        assert torch.equal(call["neg_mask"], expected)
        assert expected.sum() > 4 * t.batch  # partners besides each view itself and its positive
    else:
        assert call["neg_mask"] is None


def test_the_refusal_names_every_refused_switch_and_the_algorithms_that_implement_them_all():
    byol = registry.get("byol")
    with pytest.raises(ConfigError) as err:
        byol.check_switches({"multi_positive": True, "mask_partners": True}, others=registry.ALGOS.values())
    assert str(err.value) == ("algo 'byol' does not implement positives.variant: M and positives.mask_partners: true; "
                              "drop it or choose an algo that does (implemented by: mocov2, simclr)")
    with pytest.raises(ConfigError) as err:
        byol.check_switches({"mask_partners": True}, "methods.b: ")
    assert str(err.value) == ("methods.b: algo 'byol' does not implement positives.mask_partners: true; drop it or choose "
                              "an algo that does")
