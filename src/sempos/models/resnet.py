"""ResNets with torchvision's block classes and parameter names, a width multiplier and a CIFAR stem.

Names match torchvision (conv1, bn1, layer1.0.conv1, ...) so checkpoints convert to Detectron2
the way MoCo's converter does. `width` is the stem's channel count (64 = the standard network).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from ..errors import InvalidValueError


class ResNet(nn.Module):
    def __init__(self, block, layers, width: int = 64, in_channels: int = 3, cifar_stem: bool = False):
        super().__init__()
        self.inplanes = width
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feat_dim = width * 8 * block.expansion
        self.in_channels = in_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {}
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def build_backbone(arch: str, width: int = 64, in_channels: int = 3, image_size: int = 224,
                   patch_size: int | None = None, frozen_patch_embed: bool = False) -> nn.Module:
    if arch == "vit_small":
        from .vit import vit_small

        return vit_small(image_size, in_channels, patch_size, frozen_patch_embed)
    if arch == "resnet18_cifar":
        return ResNet(BasicBlock, [2, 2, 2, 2], width, in_channels, cifar_stem=True)
    if arch == "resnet18":
        return ResNet(BasicBlock, [2, 2, 2, 2], width, in_channels, cifar_stem=False)
    if arch == "resnet50":
        return ResNet(Bottleneck, [3, 4, 6, 3], width, in_channels, cifar_stem=False)
    raise InvalidValueError(f"backbone.arch '{arch}' is unknown; choose resnet18_cifar, resnet18, resnet50 or vit_small")
