"""A queue or bank that holds every key an epoch pushes holds each anchor's own earlier key: MoCo-v2 then has it
as a negative, NNCLR as its nearest neighbour, SNCLR among its soft neighbours. The constructor says so, with the
size that would not (small proxies and subsets are where this happens)."""

import logging

import pytest
import torch
from torch import nn

from sempos.algos import registry
from sempos.positives.partners import PartnerIndex


class LinearBackbone(nn.Linear):
    def __init__(self):
        super().__init__(4, 8)
        self.feat_dim = 8


HEADS = {"proj_hidden": 8, "proj_dim": 4, "pred_hidden": 8}


def _warnings(caplog, algo, num_train, **hp):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sempos.algos.base"):
        torch.manual_seed(0)
        cls = registry.get(algo)
        model = cls(LinearBackbone(), {**{k: v for k, v in HEADS.items() if k in cls.HPARAMS}, **hp}, num_train)
    assert model.num_train == num_train
    return [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("algo, key, per_image", [("mocov2", "queue_size", 2), ("nnclr", "bank_size", 1),
                                                  ("snclr", "bank_size", 1)])
def test_a_store_of_an_epochs_keys_is_reported_and_one_key_less_is_not(caplog, algo, key, per_image):
    # symmetric MoCo-v2 pushes both views' keys: 2 per image and epoch; NNCLR and SNCLR push one
    size = 12
    assert _warnings(caplog, algo, size // per_image + 1, **{key: size}) == []  # an epoch pushes 13 or 14 keys
    (message,) = _warnings(caplog, algo, size // per_image, **{key: size})
    assert message.startswith(f"{algo}: {key}=12 holds every key an epoch pushes (12, from {size // per_image} "
                              "training images), so each anchor's own earlier key is in it: ")
    assert message.endswith(f". Take {key} below 12.")


def _effect(message: str) -> str:
    return message.split("own earlier key is in it: ")[1].split(". Take ")[0]


def test_each_method_names_what_the_anchors_own_key_does_there(caplog):
    assert _effect(_warnings(caplog, "mocov2", 6, queue_size=12)[0]) == \
        "a false negative (positives.mask_partners masks it)"
    assert _effect(_warnings(caplog, "nnclr", 12, bank_size=12)[0]) == \
        "its nearest neighbour is mostly itself (see self_hit)"
    assert _effect(_warnings(caplog, "snclr", 12, bank_size=12)[0]) == "it is among its own soft neighbours (see self_hit)"


def test_asymmetric_moco_pushes_one_key_per_image(caplog):
    assert _warnings(caplog, "mocov2", 13, queue_size=12, symmetric=False) == []
    assert len(_warnings(caplog, "mocov2", 12, queue_size=12, symmetric=False)) == 1


def test_no_warning_where_the_anchor_cannot_meet_itself(caplog):
    # SNCLR with K = 0 reads no neighbours; a count of 0 images (a model built for inspection) says nothing
    assert _warnings(caplog, "snclr", 4, bank_size=12, k=0) == []
    assert _warnings(caplog, "nnclr", 0, bank_size=12) == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sempos.algos.base"):
        registry.get("mocov2")(LinearBackbone(), {"proj_hidden": 8, "proj_dim": 4, "queue_size": 12}, 4, mask_partners=True,
                               partners=PartnerIndex(torch.tensor([[0, 1]]), 4))
    assert caplog.records == []  # its own older keys are masked out of the negatives


def test_a_per_gpu_bank_counts_only_its_own_processs_keys(caplog, monkeypatch):
    import sempos.algos.snclr as snclr_mod

    monkeypatch.setattr(snclr_mod.dist, "world_size", lambda: 4)
    assert _warnings(caplog, "snclr", 50, bank_size=12, bank_scope="global") == []
    (message,) = _warnings(caplog, "snclr", 50, bank_size=12, bank_scope="per_gpu")  # 12 of the 50 keys each
    assert "every key an epoch pushes (12, from 50 training images)" in message
