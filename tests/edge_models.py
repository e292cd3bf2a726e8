"""Float models using the edge operations of issue 24 (pooling, clamps, grouped/dilated/non-square convs), as a
user would write them; golden.train reads them as FILE.py:CLASS (this file), the tests import them.

`ResNet18Like` is torchvision's resnet18 (BasicBlock, [2, 2, 2, 2], the 7x7/2 stem and MaxPool2d(3, 2, 1),
1x1 downsampling, adaptive average pooling and fc) at a quarter of the width, written out here because
torchvision's wheel does not load with the CPU torch of this environment."""

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
    """MobileNetV2's inverted residual: expand, depthwise, project with no ReLU, then the residual add, which
    needs a signed activation format (still refused)."""

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
