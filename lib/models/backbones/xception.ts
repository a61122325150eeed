/**
 * Xception-65 as modified for DeepLab v3+ ("aligned" Xception): separable convs everywhere,
 * BN between the depthwise and pointwise parts, 16 middle-flow units, and strides past the
 * output stride turned into dilation.
 */
import * as tf from '@tensorflow/tfjs';
import { ConvBN, Ctx, DepthwiseBN, scaled } from '../layers';
import { OnnxGraph } from '../onnx/graph';
import { ParamStore } from '../params';
import { Backbone, FeatureNames, Features } from './types';

class SeparableConv {
  private readonly dw: DepthwiseBN;
  private readonly pw: ConvBN;
  constructor(store: ParamStore, private readonly name: string, cin: number, cout: number, stride: number, dilation: number, private readonly actInside: boolean) {
    this.dw = new DepthwiseBN(store, `${name}.depthwise`, 3, cin, stride, dilation, actInside ? 'relu' : 'none');
    this.pw = new ConvBN(store, `${name}.pointwise`, { k: 1, cin, cout }, actInside ? 'relu' : 'none');
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    // Without activations inside, the module applies ReLU before each separable conv instead.
    const input = this.actInside ? x : tf.relu(x);
    return this.pw.apply(this.dw.apply(input, ctx), ctx);
  }

  export(g: OnnxGraph, x: string): string {
    const input = this.actInside ? x : g.relu(x, `${this.name}.relu`);
    return this.pw.export(g, this.dw.export(g, input));
  }
}

type Skip = 'conv' | 'sum' | 'none';

class XceptionModule {
  private readonly convs: SeparableConv[] = [];
  private readonly shortcut?: ConvBN;
  constructor(store: ParamStore, private readonly name: string, cin: number, depths: number[], private readonly skip: Skip, stride: number, dilation: number, actInside = false) {
    let c = cin;
    depths.forEach((d, i) => {
      this.convs.push(new SeparableConv(store, `${name}.sep${i + 1}`, c, d, i === depths.length - 1 ? stride : 1, dilation, actInside));
      c = d;
    });
    if (skip === 'conv') this.shortcut = new ConvBN(store, `${name}.shortcut`, { k: 1, cin, cout: c, stride }, 'none');
  }

  /** Returns the module output and the second separable conv's output (the decoder's low-level feature in entry block 2). */
  apply(x: tf.Tensor4D, ctx: Ctx): { out: tf.Tensor4D; second: tf.Tensor4D } {
    return tf.tidy(() => {
      let r = x;
      let second = x;
      this.convs.forEach((conv, i) => {
        r = conv.apply(r, ctx);
        if (i === 1) second = r;
      });
      let out = r;
      if (this.skip === 'conv') out = tf.add(r, this.shortcut!.apply(x, ctx));
      else if (this.skip === 'sum') out = tf.add(r, x);
      return { out, second };
    });
  }

  export(g: OnnxGraph, x: string): { out: string; second: string } {
    let r = x;
    let second = x;
    this.convs.forEach((conv, i) => {
      r = conv.export(g, r);
      if (i === 1) second = r;
    });
    let out = r;
    if (this.skip === 'conv') out = g.add(r, this.shortcut!.export(g, x), `${this.name}.add`);
    else if (this.skip === 'sum') out = g.add(r, x, `${this.name}.add`);
    return { out, second };
  }
}

export class Xception65 implements Backbone {
  private readonly stem1: ConvBN;
  private readonly stem2: ConvBN;
  private readonly modules: XceptionModule[] = [];
  readonly lowChannels: number;
  readonly midChannels: number;
  readonly outChannels: number;

  constructor(store: ParamStore, outputStride: 8 | 16 = 16, width = 1, middleUnits = 16) {
    const c = (n: number) => scaled(n, width);
    this.stem1 = new ConvBN(store, 'backbone.entry.conv1', { k: 3, cin: 3, cout: c(32), stride: 2 });
    this.stem2 = new ConvBN(store, 'backbone.entry.conv2', { k: 3, cin: c(32), cout: c(64) });
    let current = 2;
    let dilation = 1;
    let cin = c(64);
    const add = (name: string, depths: number[], skip: Skip, stride: number, actInside = false) => {
      let s = stride;
      if (s > 1 && current >= outputStride) {
        dilation *= s;
        s = 1;
      } else current *= s;
      const d = depths.map(c);
      this.modules.push(new XceptionModule(store, `backbone.${name}`, cin, d, skip, s, dilation, actInside));
      cin = d[d.length - 1];
    };
    add('entry.block1', [128, 128, 128], 'conv', 2);
    add('entry.block2', [256, 256, 256], 'conv', 2);
    add('entry.block3', [728, 728, 728], 'conv', 2);
    for (let i = 0; i < middleUnits; i++) add(`middle.unit${i + 1}`, [728, 728, 728], 'sum', 1);
    add('exit.block1', [728, 1024, 1024], 'conv', 2);
    add('exit.block2', [1536, 1536, 2048], 'none', 1, true);
    this.lowChannels = c(256);
    this.midChannels = c(728);
    this.outChannels = cin;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): Features {
    x = this.stem2.apply(this.stem1.apply(x, ctx), ctx);
    let low = x;
    let mid = x;
    this.modules.forEach((m, i) => {
      const { out, second } = m.apply(x, ctx);
      if (i === 1) low = second;
      else second.dispose();
      x = out;
      if (i === 2) mid = x;
    });
    return { low, mid, out: x };
  }

  export(g: OnnxGraph, x: string): FeatureNames {
    x = this.stem2.export(g, this.stem1.export(g, x));
    let low = x;
    let mid = x;
    this.modules.forEach((m, i) => {
      const { out, second } = m.export(g, x);
      if (i === 1) low = second;
      x = out;
      if (i === 2) mid = x;
    });
    return { low, mid, out: x };
  }
}
