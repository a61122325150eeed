"""PyTorch peer of bench/train.ts: the same DeepLabv3+-MobileNetV2 (width multiplier, output
stride 16, ASPP 6/12/18 with image pooling, decoder 48 -> 256 -> 256, all scaled by the width as
lib/models does), trained with SGD momentum on cross entropy of logits upsampled to the crop.

Driven over stdin so the caller can interleave it with its own runs (A B A B):
  'forward' -> a training-mode forward pass without gradients, 'step' -> forward, backward and
  an SGD update; each answers one JSON line {"ms": ...}. The first line out describes the net.
Usage: python3 torch_train.py WIDTH CROP BATCH ITER CLASSES [THREADS]
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(c, width, divisor=1):
    # lib/models/layers scaled(): JavaScript's Math.round (halves up), not Python's round.
    if width == 1:
        return c
    return max(1, max(divisor, int(math.floor(c * width / divisor + 0.5)) * divisor))


def conv_bn(cin, cout, k=1, stride=1, dilation=1, groups=1, act=nn.ReLU6):
    pad = (k - 1) // 2 * dilation
    layers = [nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, dilation, t):
        super().__init__()
        hidden = cin * t
        layers = [] if t == 1 else [conv_bn(cin, hidden)]
        layers += [conv_bn(hidden, hidden, 3, stride, dilation, groups=hidden), conv_bn(hidden, cout, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, width, output_stride=16):
        super().__init__()
        stem = scaled(32, width, 8)
        self.stem = conv_bn(3, stem, 3, 2)
        blocks, cin, current, rate, low_index = [], stem, 2, 1, -1
        for t, c, n, s in SETTINGS:
            cout = scaled(c, width, 8)
            group_stride, dilation = s, 1
            if current == output_stride:
                group_stride, dilation = 1, rate
                rate *= s
            else:
                current *= s
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, group_stride if i == 0 else 1, dilation, t))
                cin = cout
                if current == 4:
                    low_index, self.low_channels = len(blocks) - 1, cout
        self.blocks = nn.ModuleList(blocks)
        self.low_index = low_index
        self.out_channels = cin

    def forward(self, x):
        x = self.stem(x)
        low = x
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i == self.low_index:
                low = x
        return low, x


class DeepLabV3Plus(nn.Module):
    def __init__(self, width, classes, rates=(6, 12, 18)):
        super().__init__()
        self.backbone = MobileNetV2(width)
        cin, c, r = self.backbone.out_channels, scaled(256, width), scaled(48, width)
        relu = nn.ReLU
        self.branches = nn.ModuleList([conv_bn(cin, c, act=relu)] + [conv_bn(cin, c, 3, dilation=d, act=relu) for d in rates])
        self.pool = conv_bn(cin, c, act=relu)
        self.project = conv_bn(c * (len(rates) + 2), c, act=relu)
        self.reduce = conv_bn(self.backbone.low_channels, r, act=relu)
        self.fuse1 = conv_bn(c + r, c, 3, act=relu)
        self.fuse2 = conv_bn(c, c, 3, act=relu)
        self.classifier = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        low, x = self.backbone(x)
        outs = [b(x) for b in self.branches]
        pooled = self.pool(x.mean((2, 3), keepdim=True))
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        enc = self.project(torch.cat(outs, 1))
        enc = F.interpolate(enc, size=low.shape[2:], mode='bilinear', align_corners=True)
        y = self.fuse2(self.fuse1(torch.cat([enc, self.reduce(low)], 1)))
        return self.classifier(y)


def main():
    width, crop, batch, iters, classes = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if len(sys.argv) > 6:
        torch.set_num_threads(int(sys.argv[6]))
    torch.manual_seed(0)
    net = DeepLabV3Plus(width, classes)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, crop, crop)
    labels = torch.randint(0, classes, (batch, crop, crop))

    def loss_of():
        logits = F.interpolate(net(x), size=(crop, crop), mode='bilinear', align_corners=True)
        return F.cross_entropy(logits, labels, ignore_index=255)

    def step():
        opt.zero_grad()
        for _ in range(iters):
            (loss_of() / iters).backward()
        opt.step()

    def forward():
        with torch.no_grad():
            for _ in range(iters):
                net(x)

    params = sum(p.numel() for p in net.parameters())
    print(json.dumps({'ready': True, 'params': params, 'threads': torch.get_num_threads(), 'torch': torch.__version__}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if not cmd:
            continue
        t0 = time.perf_counter()
        if cmd == 'step':
            step()
        elif cmd == 'forward':
            forward()
        elif cmd == 'quit':
            break
        else:
            print(json.dumps({'error': 'unknown command ' + cmd}), flush=True)
            continue
        print(json.dumps({'ms': (time.perf_counter() - t0) * 1000}), flush=True)


if __name__ == '__main__':
    main()
