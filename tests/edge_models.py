"""Float models using the edge operations of issue 24 (pooling, clamps, grouped/dilated/non-square convs, the
linear bottleneck, concat), as a user would write them; golden.train reads them as FILE.py:CLASS (this file), the
tests import them.

`ResNet18Like` is torchvision's resnet18 (BasicBlock, [2, 2, 2, 2], the 7x7/2 stem and MaxPool2d(3, 2, 1),
1x1 downsampling, adaptive average pooling and fc) at a quarter of the width, and `MobileNetV2Like`
torchvision's mobilenet_v2 (ReLU6, depthwise convs, linear bottlenecks with a residual add and no ReLU after
it), written out here because torchvision's wheel does not load with the CPU torch of this environment."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EdgeNet(nn.Module):
    """For 3 x size x size inputs (size a multiple of 4): every new operation once. A ReLU6 stem, max pooling, a
    depthwise conv with padding="same", a grouped, dilated, non-square conv clamped by hardtanh, an average
    pooling with ceil_mode, padding and count_include_pad=False, a clamp and a Linear."""

    def __init__(self, size: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, padding="same", groups=8), nn.BatchNorm2d(8))
        self.grouped = nn.Conv2d(8, 12, (1, 3), padding=(0, 2), dilation=(1, 2), groups=4)
        self.bn = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12 * (size // 4 + 1) ** 2, 10)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = F.relu(self.depthwise(x))
        x = F.hardtanh(self.bn(self.grouped(x)), 0.0, 4.0)
        x = F.avg_pool2d(x, 2, padding=1, ceil_mode=True, count_include_pad=False)
        return self.fc(torch.flatten(x.clamp(0, 4.0), 1))


class BasicBlock(nn.Module):
    def __init__(self, planes_in: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(planes_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or planes_in != planes:
            self.downsample = nn.Sequential(nn.Conv2d(planes_in, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Like(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = [width, 2 * width, 4 * width, 8 * width]
        blocks, planes_in = [], width
        for index, planes in enumerate(widths):
            stride = 1 if index == 0 else 2
            blocks.append(nn.Sequential(BasicBlock(planes_in, planes, stride), BasicBlock(planes, planes, 1)))
            planes_in = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class LinearBottleneck(nn.Module):
    """MobileNetV2's inverted residual: expand, depthwise, project with no ReLU, then the residual add with no ReLU
    after it (a linear add: signed codes), read by the global pooling and the Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(16, 8, 1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.depthwise(self.expand(x)))
        return self.fc(x.mean((2, 3)))


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: the channel count nearest to `value` that `divisor` divides, at least
    `divisor` and not below 90% of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation as MobileNetV2 uses it: a bias-free conv, BatchNorm2d, ReLU6."""

    def __init__(self, planes_in: int, planes: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        conv = nn.Conv2d(planes_in, planes, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        super().__init__(conv, nn.BatchNorm2d(planes), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """torchvision's MobileNetV2 block: a 1x1 expansion (unless t = 1), a depthwise 3x3, a linear 1x1 projection;
    the input is added, with no ReLU after the add, when the stride is 1 and the width stays."""

    def __init__(self, planes_in: int, planes: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(planes_in * expand_ratio))
        self.use_res_connect = stride == 1 and planes_in == planes
        layers = [ConvBNReLU6(planes_in, hidden, kernel=1)] if expand_ratio != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, planes, 1, 1, 0, bias=False),
            nn.BatchNorm2d(planes),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


#: torchvision's inverted residual setting: expansion t, output channels c, blocks n, first stride s.
MOBILENET_V2_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2Like(nn.Module):
    """torchvision's mobilenet_v2 (its module names, channel rounding, Dropout and classifier) with `width_mult`
    and `last_channel` as parameters: the defaults are torchvision's."""

    def __init__(self, num_classes: int = 10, width_mult: float = 1.0, last_channel: int = 1280, dropout: float = 0.2):
        super().__init__()
        planes_in = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(last_channel * max(1.0, width_mult))
        features = [ConvBNReLU6(3, planes_in, stride=2)]
        for t, c, n, s in MOBILENET_V2_SETTING:
            planes = make_divisible(c * width_mult)
            for index in range(n):
                features.append(InvertedResidual(planes_in, planes, s if index == 0 else 1, t))
                planes_in = planes
        features.append(ConvBNReLU6(planes_in, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


class InceptionLike(nn.Module):
    """Two branches concatenated along channels (torch.cat, dim=1), as Inception and SqueezeNet's fire modules
    do: a 1x1 and a 3x3 conv of one input, each with its ReLU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.one = nn.Sequential(nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.three = nn.Sequential(nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.fc = nn.Linear(10, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.one(x), self.three(x)], dim=1)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MobileNetV2Small(MobileNetV2Like):
    """mobilenet_v2 at width 0.1 (8 to 32 channels, torchvision's rounding) with a last 1x1 conv of 320 channels
    rather than 1280, for the engine Verilog of verif.configs.NETWORK (K and N at most 512 per command)."""

    def __init__(self):
        super().__init__(width_mult=0.1, last_channel=320)


class ResNet18Small(ResNet18Like):
    """resnet18 at width 4 (4 to 32 channels), for the same engine: its widest conv has K = 32 * 9 = 288."""

    def __init__(self):
        super().__init__(width=4)
