/**
 * ResNet-50/101 with atrous stages. Three layouts:
 * - caffe: DeepLab v2's model: stride on the 1x1 reduce conv, ceil-mode stem pool, layer3
 *   dilation 2 and layer4 dilation 4 (output stride 8).
 * - paper: DeepLab v3/v3+ (TF slim): stride on the 3x3 conv, multi-grid in layer4.
 * - torchvision: stride on the 3x3 conv, the first block of a dilated layer keeps the previous
 *   dilation (so torchvision weights load with the same arithmetic).
 */
import * as tf from '@tensorflow/tfjs';
import { ConvBN, Ctx, exportMaxPool, maxPool, scaled } from '../layers';
import { OnnxGraph } from '../onnx/graph';
import { ParamStore } from '../params';
import { Backbone, FeatureNames, Features } from './types';

export type ResNetLayout = 'caffe' | 'paper' | 'torchvision';

export interface ResNetConfig {
  depth: 50 | 101;
  layout: ResNetLayout;
  outputStride: 8 | 16;
  multiGrid?: number[];
  width?: number;
  /** Blocks per layer, overriding the depth (small variants for tests). */
  blocks?: [number, number, number, number];
}

export const RESNET_BLOCKS: Record<50 | 101, [number, number, number, number]> = {
  50: [3, 4, 6, 3],
  101: [3, 4, 23, 3],
};

class Bottleneck {
  private readonly reduce: ConvBN;
  private readonly conv3: ConvBN;
  private readonly expand: ConvBN;
  private readonly shortcut?: ConvBN;

  constructor(store: ParamStore, private readonly name: string, cin: number, planes: number, stride: number, dilation: number, strideOnReduce: boolean) {
    const cout = planes * 4;
    this.reduce = new ConvBN(store, [`${name}.conv1`, `${name}.bn1`], { k: 1, cin, cout: planes, stride: strideOnReduce ? stride : 1 });
    this.conv3 = new ConvBN(store, [`${name}.conv2`, `${name}.bn2`], { k: 3, cin: planes, cout: planes, stride: strideOnReduce ? 1 : stride, dilation });
    this.expand = new ConvBN(store, [`${name}.conv3`, `${name}.bn3`], { k: 1, cin: planes, cout }, 'none');
    if (stride !== 1 || cin !== cout) {
      this.shortcut = new ConvBN(store, [`${name}.downsample.conv`, `${name}.downsample.bn`], { k: 1, cin, cout, stride }, 'none');
    }
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    // A scope per block frees its intermediates at once: ResNet-101 at 513 would not fit otherwise.
    return tf.tidy(() => {
      const y = this.expand.apply(this.conv3.apply(this.reduce.apply(x, ctx), ctx), ctx);
      return tf.relu(tf.add(y, this.shortcut ? this.shortcut.apply(x, ctx) : x)) as tf.Tensor4D;
    });
  }

  export(g: OnnxGraph, x: string): string {
    const y = this.expand.export(g, this.conv3.export(g, this.reduce.export(g, x)));
    return g.relu(g.add(y, this.shortcut ? this.shortcut.export(g, x) : x, `${this.name}.add`), `${this.name}.relu`);
  }
}

/** Per layer: stride and the dilation of each block. */
function schedule(cfg: ResNetConfig, blocks: number[]): { stride: number; dilations: number[] }[] {
  const grid = cfg.multiGrid ?? [1, 1, 1];
  const gridAt = (i: number) => grid[i % grid.length];
  const same = (n: number, d: number) => Array.from({ length: n }, () => d);
  if (cfg.layout === 'caffe') {
    if (cfg.outputStride !== 8) throw new Error('the DeepLab v2 (caffe) ResNet has output stride 8');
    return [
      { stride: 1, dilations: same(blocks[0], 1) },
      { stride: 2, dilations: same(blocks[1], 1) },
      { stride: 1, dilations: same(blocks[2], 2) },
      { stride: 1, dilations: same(blocks[3], 4) },
    ];
  }
  const os8 = cfg.outputStride === 8;
  if (cfg.layout === 'torchvision') {
    return [
      { stride: 1, dilations: same(blocks[0], 1) },
      { stride: 2, dilations: same(blocks[1], 1) },
      { stride: os8 ? 1 : 2, dilations: os8 ? [1, ...same(blocks[2] - 1, 2)] : same(blocks[2], 1) },
      { stride: 1, dilations: os8 ? [2, ...same(blocks[3] - 1, 4)] : [1, ...same(blocks[3] - 1, 2)] },
    ];
  }
  const base4 = os8 ? 4 : 2;
  return [
    { stride: 1, dilations: same(blocks[0], 1) },
    { stride: 2, dilations: same(blocks[1], 1) },
    { stride: os8 ? 1 : 2, dilations: same(blocks[2], os8 ? 2 : 1) },
    { stride: 1, dilations: Array.from({ length: blocks[3] }, (_, i) => base4 * gridAt(i)) },
  ];
}

export class ResNet implements Backbone {
  private readonly stem: ConvBN;
  private readonly layers: Bottleneck[][] = [];
  readonly lowChannels: number;
  readonly midChannels: number;
  readonly outChannels: number;

  constructor(store: ParamStore, private readonly cfg: ResNetConfig) {
    const w = cfg.width ?? 1;
    const blocks = cfg.blocks ?? RESNET_BLOCKS[cfg.depth];
    const stem = scaled(64, w);
    this.stem = new ConvBN(store, ['backbone.conv1', 'backbone.bn1'], { k: 7, cin: 3, cout: stem, stride: 2 });
    let cin = stem;
    const plan = schedule(cfg, blocks);
    plan.forEach((layer, li) => {
      const planes = scaled(64 * 2 ** li, w);
      const blocksOfLayer: Bottleneck[] = [];
      layer.dilations.forEach((d, bi) => {
        const stride = bi === 0 ? layer.stride : 1;
        blocksOfLayer.push(new Bottleneck(store, `backbone.layer${li + 1}.${bi}`, cin, planes, stride, d, cfg.layout === 'caffe'));
        cin = planes * 4;
      });
      this.layers.push(blocksOfLayer);
    });
    this.lowChannels = scaled(64, w) * 4;
    this.midChannels = scaled(256, w) * 4;
    this.outChannels = cin;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): Features {
    x = this.stem.apply(x, ctx);
    x = maxPool(x, 3, 2, 1, this.cfg.layout === 'caffe');
    const outs: tf.Tensor4D[] = [];
    for (const layer of this.layers) {
      for (const block of layer) x = block.apply(x, ctx);
      outs.push(x);
    }
    return { low: outs[0], mid: outs[2], out: outs[3] };
  }

  export(g: OnnxGraph, x: string): FeatureNames {
    x = this.stem.export(g, x);
    x = exportMaxPool(g, x, 3, 2, 1, this.cfg.layout === 'caffe', 'backbone.maxpool');
    const outs: string[] = [];
    for (const layer of this.layers) {
      for (const block of layer) x = block.export(g, x);
      outs.push(x);
    }
    return { low: outs[0], mid: outs[2], out: outs[3] };
  }
}
