/**
 * MobileNetV2 (inverted residuals, linear bottlenecks) as the v3+ encoder: the last 1x1
 * conv to 1280 channels is dropped, and strides past the output stride become dilation.
 */
import * as tf from '@tensorflow/tfjs';
import { ConvBN, Ctx, DepthwiseBN, scaled } from '../layers';
import { ParamStore } from '../params';
import { Backbone, Features } from './types';

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

  constructor(store: ParamStore, name: string, cin: number, cout: number, stride: number, dilation: number, t: number) {
    const hidden = cin * t;
    if (t !== 1) this.expand = new ConvBN(store, `${name}.expand`, { k: 1, cin, cout: hidden }, 'relu6');
    this.dw = new DepthwiseBN(store, `${name}.dw`, 3, hidden, stride, dilation);
    this.project = new ConvBN(store, `${name}.project`, { k: 1, cin: hidden, cout }, 'none');
    this.residual = stride === 1 && cin === cout;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return tf.tidy(() => {
      let y = this.expand ? this.expand.apply(x, ctx) : x;
      y = this.project.apply(this.dw.apply(y, ctx), ctx);
      return this.residual ? tf.add(x, y) : y;
    });
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

  constructor(store: ParamStore, outputStride: 8 | 16 = 16, width = 1) {
    const stemC = scaled(32, width, 8);
    this.stem = new ConvBN(store, 'backbone.features.0', { k: 3, cin: 3, cout: stemC, stride: 2 }, 'relu6');
    let cin = stemC;
    let current = 2;
    let dilation = 1;
    let lowIndex = -1;
    let lowC = 0;
    let idx = 1;
    for (const [t, c, n, s] of SETTINGS) {
      const cout = scaled(c, width, 8);
      for (let i = 0; i < n; i++) {
        let stride = i === 0 ? s : 1;
        if (stride > 1 && current >= outputStride) {
          dilation *= stride;
          stride = 1;
        } else current *= stride;
        this.blocks.push(new InvertedResidual(store, `backbone.features.${idx}`, cin, cout, stride, dilation, t));
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
}
