"""Faster R-CNN R50-C4 (Detectron2's `Res5ROIHeads` layout) assembled from torchvision's detection parts.

  backbone   stem + res2..res4 (our ResNet's conv1/bn1/maxpool + layer1..layer3), one feature map "res4"
  RPN        torchvision RPNHead + AnchorGenerator on that map (one anchor set, several sizes and ratios)
  RoI pool   ROIAlignV2 (aligned=True, sampling ratio 0) at 1/stride, 14x14, as Detectron2's C4 pooler
  box head   res5 (layer4, stride 2 -> 7x7) [+ an extra norm, MoCo's Res5ROIHeadsExtraNorm] -> average pool
  predictor  class scores and class-specific box deltas, initialised as Detectron2's FastRCNNOutputLayers

The feature stride is read from the network (4 for the CIFAR stem, 16 for the ImageNet stem) rather than
assumed, so the same code serves the narrow 1-channel ResNet-18 proxies and a standard ResNet-50.
Parameter names inside `backbone` and `roi_heads.box_head.layer4` stay torchvision's, so a `backbone.pt`
state dict loads without renaming.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Mapping, Sequence

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.misc import FrozenBatchNorm2d

from .errors import DetectionError

# Model settings with their defaults (sized for 64 px proxy scenes; Detectron2's values in comments).
MODEL_DEFAULTS: dict = {
    "train_sizes": [64],            # shortest-edge sizes drawn per batch in training (D2: 480..800 step 32)
    "test_size": 64,                # shortest edge at test time (D2: 800)
    "max_size": 1333,               # longest-edge cap (D2: 1333)
    "anchor_sizes": [16, 32, 64],   # in input pixels (D2 C4: 32, 64, 128, 256, 512)
    "aspect_ratios": [0.5, 1.0, 2.0],
    "pooler_resolution": 8,         # RoIAlign output, res5 halves it (D2: 14 -> 7x7). res5 on every RoI is
                                    # C4's main cost, quadratic in this: 8 keeps CPU proxies ~3x cheaper
    "extra_norm": True,             # MoCo's Res5ROIHeadsExtraNorm: a norm layer after res5
    "norm": "bn",                   # bn: BatchNorm trained with batch statistics (MoCo: naiveSyncBN); frozen
    "freeze_at": 0,                 # 0 trains everything (MoCo); k >= 1 freezes the stem and res2..res{k}
    "rpn_batch_size_per_image": 256,
    "rpn_positive_fraction": 0.5,
    "rpn_fg_iou": 0.7,
    "rpn_bg_iou": 0.3,
    "rpn_nms": 0.7,
    "rpn_pre_nms_topk_train": 2000,   # D2 C4: 12000
    "rpn_post_nms_topk_train": 1000,  # D2 C4: 2000
    "rpn_pre_nms_topk_test": 1000,    # MoCo: 6000
    "rpn_post_nms_topk_test": 100,    # MoCo: 1000 (these scenes hold 1-3 objects)
    "roi_batch_size_per_image": 64,   # D2: 512 (1-3 objects: at most 16 positives at 0.25 anyway)
    "roi_positive_fraction": 0.25,
    "roi_fg_iou": 0.5,
    "score_thresh": 0.05,
    "nms_thresh": 0.5,
    "detections_per_img": 100,
}
NORMS = ("bn", "frozen")


def model_settings(cfg: Mapping | None = None) -> dict:
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(MODEL_DEFAULTS))
    if unknown:
        raise DetectionError(f"unknown detection model setting(s) {unknown}; known: {sorted(MODEL_DEFAULTS)}")
    s = {**MODEL_DEFAULTS, **cfg}
    if s["norm"] not in NORMS:
        raise DetectionError(f"detection.model.norm must be one of {NORMS}, got {s['norm']!r}")
    if not 0 <= int(s["freeze_at"]) <= 4:
        raise DetectionError(f"detection.model.freeze_at must be in 0..4 (stem, res2..res4), got {s['freeze_at']}")
    return s


def _stride(module: nn.Module) -> int:
    s = getattr(module, "stride", 1)
    return int(s[0] if isinstance(s, (tuple, list)) else s)


def _out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features


class C4Body(nn.Module):
    """Stem + layer1..layer3 of our ResNet; returns {"res4": features} at `self.stride`."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        if not all(hasattr(resnet, n) for n in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")):
            raise DetectionError(f"the C4 detector needs a ResNet backbone, got {type(resnet).__name__}; "
                                 f"pretrain with backbone.arch resnet18_cifar, resnet18 or resnet50")
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, nn.ReLU(inplace=True), resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3
        # The stride decides the RoIAlign scale; computing it from the modules covers both stems.
        stride = _stride(self.conv1) * (_stride(self.maxpool) if isinstance(self.maxpool, nn.MaxPool2d) else 1)
        for layer in (self.layer1, self.layer2, self.layer3):
            for block in layer:
                stride *= _stride(block)
        self.stride = stride
        self.out_channels = _out_channels(self.layer3)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return OrderedDict(res4=self.layer3(self.layer2(self.layer1(x))))


class Res5Head(nn.Module):
    """res5 on pooled RoIs (+ optional extra norm), then global average pooling: [R, C, 14, 14] -> [R, C5]."""

    def __init__(self, layer4: nn.Sequential, extra_norm: bool) -> None:
        super().__init__()
        self.layer4 = layer4
        self.out_channels = _out_channels(layer4)
        self.norm = nn.BatchNorm2d(self.out_channels) if extra_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layer4(x)).mean(dim=(2, 3))


class AlignedRoIPool(MultiScaleRoIAlign):
    """Detectron2's ROIAlignV2 on one map at a known stride. torchvision's MultiScaleRoIAlign uses the
    legacy half-pixel-misaligned RoIAlign and guesses the scale from sizes; subclassing keeps FasterRCNN's
    type check happy while fixing both."""

    def __init__(self, featmap: str, output_size: int, stride: int, sampling_ratio: int = 0) -> None:
        super().__init__([featmap], output_size, sampling_ratio)
        self.stride = stride

    def forward(self, x, boxes, image_shapes):
        return roi_align(x[self.featmap_names[0]], boxes, self.output_size, 1.0 / self.stride,
                         self.sampling_ratio, aligned=True)


class SizeJitterTransform(GeneralizedRCNNTransform):
    """GeneralizedRCNNTransform evaluates at min_size[-1]; Detectron2 has a separate test size, so the size
    list is swapped with the train/eval mode."""

    def __init__(self, train_sizes: Sequence[int], test_size: int, max_size: int, mean, std,
                 size_divisible: int = 32) -> None:
        super().__init__(tuple(int(s) for s in train_sizes), int(max_size), list(mean), list(std),
                         size_divisible=int(size_divisible))
        self.train_sizes, self.test_size = tuple(int(s) for s in train_sizes), int(test_size)

    def train(self, mode: bool = True):
        super().train(mode)
        self.min_size = self.train_sizes if mode else (self.test_size,)
        return self


def _init_predictor(pred: FastRCNNPredictor) -> FastRCNNPredictor:
    # Detectron2's FastRCNNOutputLayers init: small scores, smaller deltas, zero biases.
    nn.init.normal_(pred.cls_score.weight, std=0.01)
    nn.init.normal_(pred.bbox_pred.weight, std=0.001)
    nn.init.zeros_(pred.cls_score.bias)
    nn.init.zeros_(pred.bbox_pred.bias)
    return pred


def _frozen_copy(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    fb = FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    for k in ("weight", "bias", "running_mean", "running_var"):
        getattr(fb, k).copy_(getattr(bn, k).detach())
    return fb


def frozen_bn(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below `module` by a FrozenBatchNorm2d holding the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, _frozen_copy(child))
        else:
            frozen_bn(child)
    return module


def _freeze(body: C4Body, freeze_at: int) -> None:
    """Detectron2's FREEZE_AT: 1 = stem, k = stem + res2..res{k}; frozen stages also get frozen BN."""
    stages = [nn.ModuleList([body.conv1, body.bn1]), body.layer1, body.layer2, body.layer3][:freeze_at]
    for stage in stages:
        for p in stage.parameters():
            p.requires_grad_(False)
    if freeze_at >= 1 and isinstance(body.bn1, nn.BatchNorm2d):
        body.bn1 = _frozen_copy(body.bn1)
    for i in range(1, min(freeze_at, 4)):
        frozen_bn(getattr(body, f"layer{i}"))


def build_c4_detector(resnet: nn.Module, image_mean: Sequence[float], image_std: Sequence[float],
                      num_classes: int, cfg: Mapping | None = None) -> FasterRCNN:
    """A C4 Faster R-CNN around a copy of `resnet` (its weights are the initialisation).

    image_mean/std: the pretraining Normalizer's per-channel statistics of images in [0, 1]; the model
    takes lists of float [C, H, W] images in [0, 1] with C = the backbone's input channels.
    num_classes: foreground classes (the background class is added here).
    """
    s = model_settings(cfg)
    if len(image_mean) != len(image_std):
        raise DetectionError(f"image_mean has {len(image_mean)} channels but image_std {len(image_std)}")
    resnet = copy.deepcopy(resnet)
    body = C4Body(resnet)
    if s["norm"] == "frozen":
        frozen_bn(body)
    _freeze(body, int(s["freeze_at"]))
    head = Res5Head(resnet.layer4, bool(s["extra_norm"]))
    if s["norm"] == "frozen":
        frozen_bn(head)  # the extra norm too: with frozen statistics it starts as the identity
    sizes = tuple(int(a) for a in s["anchor_sizes"])
    if min(sizes) < body.stride:
        raise DetectionError(f"smallest anchor {min(sizes)} px is below the feature stride {body.stride}: "
                             f"raise detection.model.anchor_sizes")
    anchors = AnchorGenerator(sizes=(sizes,), aspect_ratios=(tuple(float(r) for r in s["aspect_ratios"]),))
    model = FasterRCNN(
        body, num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=int(s["rpn_pre_nms_topk_train"]),
        rpn_pre_nms_top_n_test=int(s["rpn_pre_nms_topk_test"]),
        rpn_post_nms_top_n_train=int(s["rpn_post_nms_topk_train"]),
        rpn_post_nms_top_n_test=int(s["rpn_post_nms_topk_test"]),
        rpn_nms_thresh=float(s["rpn_nms"]), rpn_fg_iou_thresh=float(s["rpn_fg_iou"]),
        rpn_bg_iou_thresh=float(s["rpn_bg_iou"]), rpn_batch_size_per_image=int(s["rpn_batch_size_per_image"]),
        rpn_positive_fraction=float(s["rpn_positive_fraction"]),
        box_roi_pool=AlignedRoIPool("res4", int(s["pooler_resolution"]), body.stride),
        box_head=head,
        box_predictor=_init_predictor(FastRCNNPredictor(head.out_channels, num_classes + 1)),
        box_score_thresh=float(s["score_thresh"]), box_nms_thresh=float(s["nms_thresh"]),
        box_detections_per_img=int(s["detections_per_img"]),
        # Detectron2 uses one IoU threshold for RoIs: >= fg is foreground, below it background.
        box_fg_iou_thresh=float(s["roi_fg_iou"]), box_bg_iou_thresh=float(s["roi_fg_iou"]),
        box_batch_size_per_image=int(s["roi_batch_size_per_image"]),
        box_positive_fraction=float(s["roi_positive_fraction"]),
    )
    # Padding to the feature stride keeps the grid aligned; torchvision's default of 32 (an FPN need) would
    # pad a 48 px scene to 64 px for nothing (Detectron2's C4 does not pad at all).
    model.transform = SizeJitterTransform(s["train_sizes"], s["test_size"], s["max_size"], image_mean, image_std,
                                          size_divisible=body.stride)
    model.in_channels = int(resnet.in_channels)
    model.feature_stride = body.stride
    return model


def c4_from_checkpoint(backbone_path, num_classes: int, cfg: Mapping | None = None) -> tuple[FasterRCNN, dict]:
    """(detector initialised from a pretrain stage's backbone.pt, that checkpoint's meta)."""
    from ..models.checkpoint import load_backbone

    resnet, norm, meta = load_backbone(backbone_path)
    if not str(meta.get("arch", "")).startswith("resnet"):
        raise DetectionError(f"{backbone_path} holds a {meta.get('arch')} backbone; the C4 detector needs a ResNet "
                             f"(resnet18_cifar, resnet18, resnet50)")
    model = build_c4_detector(resnet, norm.mean.flatten().tolist(), norm.std.flatten().tolist(), num_classes, cfg)
    return model, meta
