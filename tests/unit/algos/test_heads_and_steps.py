"""Heads against the papers' recipes and single training steps against hand-written losses, on a linear
stand-in backbone (milliseconds: the mutation campaign re-runs these for every mutant of sempos.algos)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sempos.algos import registry
from sempos.algos.base import Algorithm, Batch
from sempos.algos.byol import BYOL
from sempos.algos.simsiam import SimSiam
from sempos.algos.snclr import LearnableAttention
from sempos.positives.partners import PartnerIndex

HEADS = {"proj_hidden": 12, "proj_dim": 10, "pred_hidden": 6}


class LinearBackbone(nn.Linear):
    """The backbone contract the heads rely on: [B, in] -> [B, feat_dim]."""

    def __init__(self, in_dim=4, feat_dim=8):
        super().__init__(in_dim, feat_dim)
        self.feat_dim = feat_dim


def _views(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 4, generator=g), torch.randn(b, 4, generator=g)


def _batch(b=6):
    ids = torch.arange(b)
    return Batch(ids, ids, 0, 0, 0.0)


def _layout(seq):
    """(type name, in, out, has bias) of linear layers; (type name, features, affine) of BN; name otherwise."""
    out = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("BN", m.num_features, m.affine))
        else:
            out.append(type(m).__name__)
    return out


@pytest.mark.parametrize("algo", sorted(registry.CLASS_NAMES))
def test_every_algorithm_keeps_the_training_set_size(algo):
    m = registry.get(algo)(LinearBackbone(), {}, 37)
    assert m.num_train == 37


def test_byol_heads_follow_the_paper():
    """BYOL (Grill et al. 2020 §3.3): projector and predictor are each Linear-BN-ReLU-Linear (2 layers)."""
    torch.manual_seed(0)
    m = BYOL(LinearBackbone(), HEADS, 10)
    assert _layout(m.projector) == [("Linear", 8, 12, False), ("BN", 12, True), "ReLU", ("Linear", 12, 10, True)]
    assert _layout(m.predictor) == [("Linear", 10, 6, False), ("BN", 6, True), "ReLU", ("Linear", 6, 10, True)]
    assert _layout(m.projector_t) == _layout(m.projector)


def _head(in_dim, hidden, out_dim, layers, last_bn):
    """The layout of mlp(): Linear-BN-ReLU blocks, then a Linear with a bias unless an affine-free BN follows."""
    out, dim = [], in_dim
    for _ in range(layers - 1):
        out += [("Linear", dim, hidden, False), ("BN", hidden, True), "ReLU"]
        dim = hidden
    return out + ([("Linear", dim, out_dim, False), ("BN", out_dim, False)] if last_bn
                  else [("Linear", dim, out_dim, True)])


# (algo, extra hp): projector (layers, last BN), predictor (layers, last BN) or None, target projector's name
PAPER_HEADS = [
    ("simclr", {}, (2, False), None, None),  # SimCLR: a 2-layer projection head
    ("mocov2", {}, (2, False), None, "projector_k"),  # MoCo-v2: SimCLR's 2-layer MLP head
    # MoCo-v3's ViT path (SNCLR's code): a 3-layer projector and a predictor both ending in BN(affine=False)
    ("mocov3", {}, (3, True), (2, True), "projector_k"),
    ("mocov3", {"pred_last_bn": False}, (3, True), (2, False), "projector_k"),  # its ResNet recipe
    ("snclr", {}, (3, True), (2, True), "projector_k"),
    ("nnclr", {}, (3, True), (2, False), None),  # NNCLR: 3-layer projector with output BN, 2-layer predictor
]


@pytest.mark.parametrize("algo,hp,proj,pred,target", PAPER_HEADS)
def test_heads_follow_the_papers(algo, hp, proj, pred, target):
    cls = registry.get(algo)
    m = cls(LinearBackbone(), {**{k: v for k, v in HEADS.items() if k in cls.HPARAMS}, **hp}, 10)
    assert _layout(m.projector) == _head(8, 12, 10, *proj)
    if pred is None:
        assert not hasattr(m, "predictor")
    else:
        assert _layout(m.predictor) == _head(10, 6, 10, *pred)
    if target:
        assert _layout(getattr(m, target)) == _layout(m.projector)


def test_head_depth_has_no_default():
    from sempos.algos.heads import mlp

    with pytest.raises(TypeError):
        mlp(4, 8, 2)
    assert _layout(mlp(4, 8, 2, layers=1)) == [("Linear", 4, 2, True)]


def _neg_cos(p, z):
    """-cos(p_i, z_i) per row, by hand."""
    return -(p * z).sum(1) / (p.norm(dim=1) * z.norm(dim=1))


def test_byol_step_is_the_symmetrised_normalised_mse():
    torch.manual_seed(0)
    m = BYOL(LinearBackbone(), HEADS, 10)
    x1, x2 = _views()
    got = m.training_step(x1, x2, _batch())["loss"]
    with torch.no_grad():
        p1, p2 = m.predictor(m.projector(m.backbone(torch.cat([x1, x2])))).chunk(2)
        t1, t2 = m.projector_t(m.backbone_t(torch.cat([x1, x2]))).chunk(2)
    ref = (2 + 2 * _neg_cos(p1, t2)).mean() + (2 + 2 * _neg_cos(p2, t1)).mean()
    torch.testing.assert_close(got.detach(), ref, rtol=1e-5, atol=1e-6)


def test_simsiam_step_is_half_the_symmetrised_negative_cosine():
    torch.manual_seed(0)
    m = SimSiam(LinearBackbone(), HEADS, 10)
    x1, x2 = _views()
    got = m.training_step(x1, x2, _batch())["loss"]
    with torch.no_grad():
        z = m.projector(m.backbone(torch.cat([x1, x2])))
        p1, p2 = m.predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
    ref = 0.5 * (_neg_cos(p1, z2).mean() + _neg_cos(p2, z1).mean())
    torch.testing.assert_close(got.detach(), ref, rtol=1e-5, atol=1e-6)


def test_same_or_partner_without_and_with_a_partner_index():
    a, b = torch.tensor([0, 1, 2]), torch.tensor([2, 0, 5, 1])
    same = [[False, True, False, False], [False, False, False, True], [True, False, False, False]]
    assert Algorithm(LinearBackbone(), {}, 6).same_or_partner(a, b).tolist() == same
    m = Algorithm(LinearBackbone(), {}, 6, partners=PartnerIndex(torch.tensor([[1, 5]]), num_images=6))
    assert m.same_or_partner(a, b).tolist() == [same[0], [False, False, True, True], same[2]]


def _attention_reference(attn, y, nb):
    """The paper's softmax_i[f1(y) . f2(NN_i)] with f = GELU(W x + b), on normalised vectors."""
    (w1, b1), (w2, b2) = ((f[0].weight, f[0].bias) for f in (attn.f1, attn.f2))
    f1 = F.normalize(F.gelu(y @ w1.t() + b1), dim=1)
    f2 = F.normalize(F.gelu(nb @ w2.t() + b2), dim=2)
    return torch.softmax((f1.unsqueeze(1) * f2).sum(2), dim=1)


def test_learnable_attention_is_linear_then_gelu_on_each_side():
    torch.manual_seed(0)
    attn = LearnableAttention(4)
    for f in (attn.f1, attn.f2):
        assert _layout(f) == [("Linear", 4, 4, True), "GELU"]
    g = torch.Generator().manual_seed(1)
    y, nb = torch.randn(3, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    with torch.no_grad():
        ref = _attention_reference(attn, y, nb)
        torch.testing.assert_close(attn(y, nb, threshold=False), ref)
        # threshold: weights <= 1/K are zeroed, the others kept as they are (not renormalised)
        cut = torch.where(ref > 1 / 5, ref, torch.zeros_like(ref))
        assert (cut == 0).any() and (cut > 0).any()
        torch.testing.assert_close(attn(y, nb, threshold=True), cut)
