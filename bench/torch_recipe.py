"""Recipe search in PyTorch on the pictures the train node sees (bench/recipe-dump.ts writes them):
the same DeepLab v3+ MobileNetV2 as bench/torch_train.py (or a small v3+ ResNet: arch=resnet),
trained from scratch with the train node's recipe parts (random scale, crop and mirror; Adam with
decoupled weight decay or SGD with momentum; linear warm-up under poly; 1/sqrt(frequency) class
weights), printing the held-out mIoU (VOC rule: one confusion matrix over all held-out images,
evaluated whole, BN in eval mode) every evalEvery iterations. A PyTorch step is faster than ours,
so a recipe is found here in minutes and then confirmed with bench/recipe.ts.

  node dist/bench/recipe-dump.js test-output/hard 2000 50
  /usr/bin/python3 bench/torch_recipe.py data=test-output/hard iters=600 lr=0.003 cw=none
Options (key=value): see CFG below.
"""
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit('/', 1)[0])
import torch_train as tt  # noqa: E402

CFG = dict(data='test-output/hard', arch='mnv2', width=0.25, os=16, blocks='1,1,1,1', crop=81, batch=4, opt='adam',
           lr=3e-3, warm=10, power=0.9, mom=0.9, wd=1e-4, iters=240, cw='sqrt', smin=0.75, smax=1.25,
           ntrain=40, nval=20, evalEvery=40, seed=0, threads=1)


def parse(argv):
    cfg = dict(CFG)
    for a in argv:
        k, v = a.split('=', 1)
        cfg[k] = type(CFG[k])(v)
    return cfg


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, d):
        super().__init__()
        relu = nn.ReLU
        self.body = nn.Sequential(tt.conv_bn(cin, planes, act=relu), tt.conv_bn(planes, planes, 3, stride, d, act=relu), tt.conv_bn(planes, planes * 4, act=None))
        self.down = tt.conv_bn(cin, planes * 4, 1, stride, act=None) if stride != 1 or cin != planes * 4 else None

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


class ResNetV3Plus(nn.Module):
    """lib/models' v3+ ResNet at output stride 16 (layer4 dilated), blocks per layer as given."""

    def __init__(self, width, blocks, classes):
        super().__init__()
        sc = lambda c: tt.scaled(c, width)  # noqa: E731
        relu = nn.ReLU
        self.stem = tt.conv_bn(3, sc(64), 7, 2, act=relu)
        layers, cin = [], sc(64)
        for li, (n, stride, d) in enumerate(zip(blocks, [1, 2, 2, 1], [1, 1, 1, 2])):
            seq = []
            for bi in range(n):
                seq.append(Bottleneck(cin, sc(64 * 2 ** li), stride if bi == 0 else 1, d))
                cin = sc(64 * 2 ** li) * 4
            layers.append(nn.Sequential(*seq))
        self.layers = nn.ModuleList(layers)
        c, r = sc(256), sc(48)
        self.branches = nn.ModuleList([tt.conv_bn(cin, c, act=relu)] + [tt.conv_bn(cin, c, 3, dilation=d, act=relu) for d in (6, 12, 18)])
        self.pool = tt.conv_bn(cin, c, act=relu)
        self.project = tt.conv_bn(c * 5, c, act=relu)
        self.reduce = tt.conv_bn(sc(64) * 4, r, act=relu)
        self.fuse1 = tt.conv_bn(c + r, c, 3, act=relu)
        self.fuse2 = tt.conv_bn(c, c, 3, act=relu)
        self.classifier = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), 3, 2, 1)
        x = low = self.layers[0](x)
        for layer in self.layers[1:]:
            x = layer(x)
        outs = [b(x) for b in self.branches] + [self.pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, x.shape[2], x.shape[3])]
        enc = F.interpolate(self.project(torch.cat(outs, 1)), size=low.shape[2:], mode='bilinear', align_corners=True)
        return self.classifier(self.fuse2(self.fuse1(torch.cat([enc, self.reduce(low)], 1))))


class MobileNetV3Plus(tt.DeepLabV3Plus):
    def __init__(self, width, classes, output_stride):
        super().__init__(width, classes)
        if output_stride != 16:
            self.backbone = tt.MobileNetV2(width, output_stride)


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


def main():
    cfg = parse(sys.argv[1:])
    torch.set_num_threads(cfg['threads'])
    torch.manual_seed(cfg['seed'])
    rng = np.random.default_rng(cfg['seed'])
    meta = json.load(open(f"{cfg['data']}/meta.json"))
    H, W = meta['options']['height'], meta['options']['width']
    load = lambda name, shape: np.fromfile(f"{cfg['data']}/{name}.bin", np.uint8).reshape(shape)  # noqa: E731
    timg, tlab = load('train_img', (-1, H, W, 3))[:cfg['ntrain']], load('train_lab', (-1, H, W))[:cfg['ntrain']]
    vimg, vlab = load('val_img', (-1, H, W, 3))[:cfg['nval']], load('val_lab', (-1, H, W))[:cfg['nval']]
    classes = meta['options'].get('classes', 4)
    prep = lambda x: (torch.from_numpy(x).permute(0, 3, 1, 2).float() - MEAN) / STD  # noqa: E731

    if cfg['arch'] == 'resnet':
        net = ResNetV3Plus(cfg['width'], [int(b) for b in cfg['blocks'].split(',')], classes)
    else:
        net = MobileNetV3Plus(cfg['width'], classes, cfg['os'])
    net.train()
    # The trainer's 1/sqrt(frequency) over up to 64 training images, scaled to mean pixel weight 1.
    counts = np.bincount(tlab[:64].ravel(), minlength=classes).astype(float)
    weights = np.ones(classes)
    if cfg['cw'] == 'sqrt':
        weights = 1 / np.sqrt(np.maximum(counts, 1) / counts.sum())
        weights /= (counts * weights).sum() / counts.sum()
    weights = torch.tensor(weights, dtype=torch.float32)
    if cfg['opt'] == 'adam':
        opt = torch.optim.AdamW(net.parameters(), lr=cfg['lr'], weight_decay=cfg['wd'])
    else:
        opt = torch.optim.SGD(net.parameters(), lr=cfg['lr'], momentum=cfg['mom'], weight_decay=cfg['wd'])
    C = cfg['crop']

    def sample():
        i = rng.integers(len(timg))
        scale = rng.uniform(cfg['smin'], cfg['smax'])
        n_h, n_w = max(1, round(H * scale)), max(1, round(W * scale))
        x = prep(timg[i:i + 1])
        y = torch.from_numpy(tlab[i:i + 1].astype(np.float32))[:, None]
        if (n_h, n_w) != (H, W):
            x = F.interpolate(x, size=(n_h, n_w), mode='bilinear', align_corners=False)
            y = F.interpolate(y, size=(n_h, n_w), mode='nearest')
        x = F.pad(x, (0, max(0, C - n_w), 0, max(0, C - n_h)))
        y = F.pad(y, (0, max(0, C - n_w), 0, max(0, C - n_h)), value=255)
        oy, ox = rng.integers(x.shape[2] - C + 1), rng.integers(x.shape[3] - C + 1)
        x, y = x[:, :, oy:oy + C, ox:ox + C], y[:, :, oy:oy + C, ox:ox + C]
        if rng.random() < 0.5:
            x, y = x.flip(3), y.flip(3)
        return x, y

    def evaluate():
        net.eval()
        conf = np.zeros((classes, classes))
        with torch.no_grad():
            for i in range(0, len(vimg), 10):
                logits = F.interpolate(net(prep(vimg[i:i + 10])), size=(H, W), mode='bilinear', align_corners=True)
                conf += np.bincount(vlab[i:i + 10].ravel().astype(np.int64) * classes + logits.argmax(1).numpy().ravel(),
                                    minlength=classes * classes).reshape(classes, classes)
        net.train()
        iou = np.diag(conf) / np.maximum(conf.sum(0) + conf.sum(1) - np.diag(conf), 1)
        return iou

    T, curve, t0 = cfg['iters'], [], time.time()
    print(json.dumps(cfg), 'parameters', sum(p.numel() for p in net.parameters()), flush=True)
    for it in range(T):
        lr = cfg['lr'] * (1 - it / T) ** cfg['power']
        if it < cfg['warm']:
            lr *= (it + 1) / cfg['warm']
        for g in opt.param_groups:
            g['lr'] = lr
        xs, ys = zip(*[sample() for _ in range(cfg['batch'])])
        x, y = torch.cat(xs), torch.cat(ys)[:, 0].long()
        loss = F.cross_entropy(F.interpolate(net(x), size=(C, C), mode='bilinear', align_corners=True), y, weight=weights, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (it + 1) % cfg['evalEvery'] == 0 or it + 1 == T:
            iou = evaluate()
            curve.append([it + 1, round(float(iou.mean()), 3)])
            print(f'  iteration {it + 1} loss {loss.item():.3f} mIoU {iou.mean():.3f} per class {np.round(iou, 2).tolist()} {time.time() - t0:.0f} s', flush=True)
    print('curve', json.dumps(curve), flush=True)


if __name__ == '__main__':
    main()
