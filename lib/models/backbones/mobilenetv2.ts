/**
 * MobileNetV2 (inverted residuals, linear bottlenecks) as the v3+ encoder: the last 1x1
 * conv to 1280 channels is dropped, and strides past the output stride become dilation.
 */
import * as tf from '@tensorflow/tfjs';
import { ConvBN, Ctx, DepthwiseBN, scaled } from '../layers';
import { OnnxGraph } from '../onnx/graph';
import { ParamStore } from '../params';
import { Backbone, FeatureNames, Features } from './types';

// expansion t, output channels c, repeats n, first stride s
const SETTINGS: [number, number, number, number][] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

class InvertedResidual {
  private readonly expand?: ConvBN;
  private readonly dw: DepthwiseBN;
  private readonly project: ConvBN;
  private readonly residual: boolean;

  /** Zero padding added before the expansion conv instead of before the depthwise conv (jfzhang95). */
  private readonly padFirst: number;

  constructor(store: ParamStore, private readonly name: string, cin: number, cout: number, stride: number, dilation: number, t: number, padBeforeExpand: boolean) {
    const hidden = cin * t;
    if (t !== 1) this.expand = new ConvBN(store, `${name}.expand`, { k: 1, cin, cout: hidden }, 'relu6');
    this.padFirst = padBeforeExpand ? dilation : 0;
    this.dw = new DepthwiseBN(store, `${name}.dw`, 3, hidden, stride, dilation, 'relu6', !padBeforeExpand);
    this.project = new ConvBN(store, `${name}.project`, { k: 1, cin: hidden, cout }, 'none');
    this.residual = stride === 1 && cin === cout;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return tf.tidy(() => {
      const p = this.padFirst;
      let y = p ? tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) : x;
      if (this.expand) y = this.expand.apply(y, ctx);
      y = this.project.apply(this.dw.apply(y, ctx), ctx);
      return this.residual ? tf.add(x, y) : y;
    });
  }

  export(g: OnnxGraph, x: string): string {
    const p = this.padFirst;
    let y = g.padSpatial(x, [[p, p], [p, p]], `${this.name}.pad`);
    if (this.expand) y = this.expand.export(g, y);
    y = this.project.export(g, this.dw.export(g, y));
    return this.residual ? g.add(x, y, `${this.name}.add`) : y;
  }
}

export class MobileNetV2 implements Backbone {
  private readonly stem: ConvBN;
  private readonly blocks: InvertedResidual[] = [];
  /** Index of the block after which the stride-4 (low-level) features are taken. */
  private readonly lowIndex: number;
  readonly lowChannels: number;
  readonly midChannels: number;
  readonly outChannels: number;

  constructor(store: ParamStore, outputStride: 8 | 16 = 16, width = 1, padBeforeExpand = false) {
    const stemC = scaled(32, width, 8);
    this.stem = new ConvBN(store, 'backbone.features.0', { k: 3, cin: 3, cout: stemC, stride: 2 }, 'relu6');
    let cin = stemC;
    let current = 2;
    let rate = 1;
    let lowIndex = -1;
    let lowC = 0;
    let idx = 1;
    for (const [t, c, n, s] of SETTINGS) {
      const cout = scaled(c, width, 8);
      // Past the output stride a group's stride becomes dilation: the group where that happens keeps
      // the rate so far and the groups after it multiply it (as the published v3+ MobileNetV2 does).
      let groupStride = s;
      let dilation = 1;
      if (current === outputStride) {
        groupStride = 1;
        dilation = rate;
        rate *= s;
      } else current *= s;
      for (let i = 0; i < n; i++) {
        const stride = i === 0 ? groupStride : 1;
        this.blocks.push(new InvertedResidual(store, `backbone.features.${idx}`, cin, cout, stride, dilation, t, padBeforeExpand));
        cin = cout;
        if (current === 4) {
          lowIndex = this.blocks.length - 1;
          lowC = cout;
        }
        idx++;
      }
    }
    this.lowIndex = lowIndex;
    this.lowChannels = lowC;
    this.midChannels = scaled(96, width, 8);
    this.outChannels = cin;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): Features {
    x = this.stem.apply(x, ctx);
    let low = x;
    this.blocks.forEach((b, i) => {
      x = b.apply(x, ctx);
      if (i === this.lowIndex) low = x;
    });
    return { low, out: x };
  }

  export(g: OnnxGraph, x: string): FeatureNames {
    x = this.stem.export(g, x);
    let low = x;
    this.blocks.forEach((b, i) => {
      x = b.export(g, x);
      if (i === this.lowIndex) low = x;
    });
    return { low, out: x };
  }
}
