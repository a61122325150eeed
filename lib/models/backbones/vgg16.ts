/**
 * VGG-16 as DeepLab v1 uses it (LargeFOV): pool1-3 3x3 stride 2 pad 1, pool4/pool5 3x3 stride 1,
 * conv5 with dilation 2, so the features stay at stride 8.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv, Ctx, exportMaxPool, maxPool, scaled } from '../layers';
import { OnnxGraph } from '../onnx/graph';
import { ParamStore } from '../params';
import { Backbone, FeatureNames, Features } from './types';

const STAGES: { convs: number; channels: number }[] = [
  { convs: 2, channels: 64 },
  { convs: 2, channels: 128 },
  { convs: 3, channels: 256 },
  { convs: 3, channels: 512 },
  { convs: 3, channels: 512 },
];

export class Vgg16Dilated implements Backbone {
  private readonly stages: Conv[][] = [];
  readonly lowChannels: number;
  readonly midChannels: number;
  readonly outChannels: number;

  constructor(store: ParamStore, width = 1) {
    let cin = 3;
    STAGES.forEach((st, i) => {
      const convs: Conv[] = [];
      const cout = scaled(st.channels, width);
      for (let j = 0; j < st.convs; j++) {
        convs.push(new Conv(store, `backbone.conv${i + 1}_${j + 1}`, { k: 3, cin, cout, bias: true, dilation: i === 4 ? 2 : 1 }));
        cin = cout;
      }
      this.stages.push(convs);
    });
    this.lowChannels = scaled(128, width);
    this.midChannels = scaled(512, width);
    this.outChannels = cin;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): Features {
    let low = x;
    let mid = x;
    this.stages.forEach((convs, i) => {
      for (const c of convs) {
        const input = x;
        x = tf.tidy(() => tf.relu(c.apply(input, ctx)));
      }
      // Caffe pools in ceil mode; pools 4 and 5 keep the resolution.
      x = i < 3 ? maxPool(x, 3, 2, 1, true) : maxPool(x, 3, 1, 1);
      if (i === 1) low = x;
      if (i === 3) mid = x;
    });
    return { low, mid, out: x };
  }

  export(g: OnnxGraph, x: string): FeatureNames {
    let low = x;
    let mid = x;
    this.stages.forEach((convs, i) => {
      for (const c of convs) x = g.relu(c.export(g, x), `${c.name}.relu`);
      const name = `backbone.pool${i + 1}`;
      x = i < 3 ? exportMaxPool(g, x, 3, 2, 1, true, name) : exportMaxPool(g, x, 3, 1, 1, false, name);
      if (i === 1) low = x;
      if (i === 3) mid = x;
    });
    return { low, mid, out: x };
  }
}
