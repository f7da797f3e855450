"""Built-in architectures for ``state_dict`` checkpoints, so common weights load without timm or
torchvision.

- ``tiny_cnn``: a small 4-stage CNN (tests, quick experiments).
- ``resnet18``, ``resnet34``, ``resnet50``: ResNets whose parameter names match torchvision's
  (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc``...), which timm's
  ResNets share, so many published pathology checkpoints load as they are.
- ``vit_*``: timm-named Vision Transformers (``vit.py``), e.g. ``vit_large_patch16_224`` (UNI),
  ``vit_huge_patch14_224`` (Virchow), ``vit_giant_patch14_reg4_dinov2`` (H-optimus-0).

Every builder takes ``num_outputs`` (the card's label count or embedding size; 0 drops the
classifier head so the model returns its pooled features) plus the card's ``architecture_args``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from slidescout.tools.experts.vit import VIT_CONFIGS, vit_builder


class TinyCNN(nn.Module):
    """Four strided 3×3 conv stages, global average pooling, a linear head."""

    def __init__(self, num_outputs: int = 2, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        chans = [in_channels, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module = nn.Linear(chans[-1], num_outputs) if num_outputs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


# ---------------------------------------------------------------------------------------------
# ResNet (torchvision parameter names)
# ---------------------------------------------------------------------------------------------
def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_outputs: int = 1000,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._layer(block, width, layers[0])
        self.layer2 = self._layer(block, width * 2, layers[1], 2)
        self.layer3 = self._layer(block, width * 4, layers[2], 2)
        self.layer4 = self._layer(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        feat = width * 8 * block.expansion
        self.num_features = feat
        self.fc: nn.Module = nn.Linear(feat, num_outputs) if num_outputs else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, block: Any, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            down = nn.Sequential(
                _conv1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_cnn(num_outputs: int = 2, **kw: Any) -> nn.Module:
    return TinyCNN(num_outputs, **kw)


def resnet18(num_outputs: int = 1000, **kw: Any) -> nn.Module:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_outputs, **kw)


def resnet34(num_outputs: int = 1000, **kw: Any) -> nn.Module:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_outputs, **kw)


def resnet50(num_outputs: int = 1000, **kw: Any) -> nn.Module:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_outputs, **kw)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "tiny_cnn": tiny_cnn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    **{name: vit_builder(name) for name in VIT_CONFIGS},
}

__all__ = ["ARCHITECTURES", "ResNet", "TinyCNN", "resnet18", "resnet34", "resnet50", "tiny_cnn"]
