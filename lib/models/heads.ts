/**
 * Segmentation heads: DeepLab v1's fc6-fc8, v2's ASPP-L (summed dilated classifiers),
 * v3's ASPP with image pooling, torchvision's DeepLabHead and FCN auxiliary head, and the
 * v3+ decoder.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv, ConvBN, Ctx, dropout, exportUpsample, scaled, upsample } from './layers';
import { OnnxGraph } from './onnx/graph';
import { ParamStore } from './params';

/** Classifier convs start from N(0, 0.01) as in the DeepLab prototxts. */
const CLASSIFIER_STD = 0.01;

export interface Head {
  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D;
  /** The inference arithmetic of `apply` as ONNX nodes (NCHW); dropout is the identity there. */
  export(g: OnnxGraph, x: string): string;
}

/** DeepLab v1 LargeFOV: pool5a (3x3 average, stride 1), fc6 3x3 dilation 12, fc7 1x1, fc8. */
export class LargeFovHead implements Head {
  private readonly fc6: Conv;
  private readonly fc7: Conv;
  private readonly fc8: Conv;
  constructor(store: ParamStore, cin: number, classes: number, width = 1) {
    const c = scaled(1024, width);
    this.fc6 = new Conv(store, 'head.fc6', { k: 3, cin, cout: c, dilation: 12, bias: true });
    this.fc7 = new Conv(store, 'head.fc7', { k: 1, cin: c, cout: c, bias: true });
    this.fc8 = new Conv(store, 'head.fc8', { k: 1, cin: c, cout: classes, bias: true, std: CLASSIFIER_STD });
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    // Caffe's average pooling counts the zero padding in the window (divides by 9).
    x = tf.avgPool(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, 'valid');
    x = dropout(tf.relu(this.fc6.apply(x, ctx)), 0.5, ctx);
    x = dropout(tf.relu(this.fc7.apply(x, ctx)), 0.5, ctx);
    return this.fc8.apply(x, ctx);
  }

  export(g: OnnxGraph, x: string): string {
    x = g.node('AveragePool', [g.padSpatial(x, [[1, 1], [1, 1]], 'head.pool5a.pad')], { kernel_shape: [3, 3], strides: [1, 1] }, 'head.pool5a');
    x = g.relu(this.fc6.export(g, x), 'head.fc6.relu');
    x = g.relu(this.fc7.export(g, x), 'head.fc7.relu');
    return this.fc8.export(g, x);
  }
}

/** DeepLab v2 ASPP-L: four 3x3 classifiers with dilation 6/12/18/24, summed. */
export class AsppV2Head implements Head {
  private readonly branches: Conv[];
  constructor(store: ParamStore, cin: number, classes: number, rates = [6, 12, 18, 24]) {
    this.branches = rates.map((r, i) => new Conv(store, `head.aspp.${i}`, { k: 3, cin, cout: classes, dilation: r, bias: true, std: CLASSIFIER_STD }));
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return tf.addN(this.branches.map((b) => b.apply(x, ctx)));
  }

  export(g: OnnxGraph, x: string): string {
    return g.node('Sum', this.branches.map((b) => b.export(g, x)), {}, 'head.aspp.sum');
  }
}

/** DeepLab v3 ASPP: 1x1 + three 3x3 atrous + image pooling, concatenated and projected to 256. */
export class Aspp {
  private readonly branches: ConvBN[];
  private readonly pooling?: ConvBN;
  private readonly project: ConvBN;
  readonly outChannels: number;

  constructor(store: ParamStore, prefix: string, cin: number, rates: number[], width = 1, private readonly dropRate = 0, imagePooling = true) {
    const c = scaled(256, width);
    this.branches = [
      new ConvBN(store, `${prefix}.b0`, { k: 1, cin, cout: c }),
      ...rates.map((r, i) => new ConvBN(store, `${prefix}.b${i + 1}`, { k: 3, cin, cout: c, dilation: r })),
    ];
    if (imagePooling) this.pooling = new ConvBN(store, `${prefix}.pool`, { k: 1, cin, cout: c });
    const n = this.branches.length + (imagePooling ? 1 : 0);
    this.project = new ConvBN(store, `${prefix}.project`, { k: 1, cin: n * c, cout: c });
    this.outChannels = c;
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return tf.tidy(() => this.applyScoped(x, ctx));
  }

  private applyScoped(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    const outs = this.branches.map((b) => b.apply(x, ctx));
    if (this.pooling) {
      const pooled = this.pooling.apply(tf.mean(x, [1, 2], true) as tf.Tensor4D, ctx);
      // broadcastTo, not tile: the same Tile forward, but one Sum as its gradient, where tile's is a
      // Slice and an Add per cell (441 of each at a 21x21 map, ~7 % of a training step, measured).
      outs.push(tf.broadcastTo(pooled, [x.shape[0], x.shape[1], x.shape[2], pooled.shape[3]]));
    }
    return dropout(this.project.apply(tf.concat(outs, 3), ctx), this.dropRate, ctx);
  }

  export(g: OnnxGraph, x: string): string {
    const outs = this.branches.map((b) => b.export(g, x));
    if (this.pooling) {
      const name = this.pooling.conv.name;
      const pooled = this.pooling.export(g, g.node('ReduceMean', [x], { axes: [2, 3], keepdims: 1 }, `${name}.mean`));
      // tf.tile to the map's size: Expand broadcasts [N, C, 1, 1] to [1, 1, H, W].
      const shape = g.node('Concat', [g.int64s(`${name}.ones`, [1, 1]), g.spatialShape(x, `${name}.hw`)], { axis: 0 }, `${name}.shape`);
      outs.push(g.node('Expand', [pooled, shape], {}, `${name}.tile`));
    }
    return this.project.export(g, g.concatChannels(outs, `${this.project.conv.name}.concat`));
  }
}

/** v3 as in the paper: ASPP then a 1x1 classifier. */
export class AsppV3Head implements Head {
  private readonly aspp: Aspp;
  private readonly classifier: Conv;
  constructor(store: ParamStore, cin: number, classes: number, rates: number[], width = 1) {
    this.aspp = new Aspp(store, 'head.aspp', cin, rates, width);
    this.classifier = new Conv(store, 'head.classifier', { k: 1, cin: this.aspp.outChannels, cout: classes, bias: true, std: CLASSIFIER_STD });
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return this.classifier.apply(this.aspp.apply(x, ctx), ctx);
  }

  export(g: OnnxGraph, x: string): string {
    return this.classifier.export(g, this.aspp.export(g, x));
  }
}

/** torchvision's DeepLabHead: ASPP (dropout 0.5), a 3x3 256 conv, then the classifier. */
export class TorchvisionHead implements Head {
  private readonly aspp: Aspp;
  private readonly conv: ConvBN;
  private readonly classifier: Conv;
  constructor(store: ParamStore, cin: number, classes: number, rates: number[], width = 1) {
    this.aspp = new Aspp(store, 'head.aspp', cin, rates, width, 0.5);
    const c = this.aspp.outChannels;
    this.conv = new ConvBN(store, 'head.conv', { k: 3, cin: c, cout: c });
    this.classifier = new Conv(store, 'head.classifier', { k: 1, cin: c, cout: classes, bias: true, std: CLASSIFIER_STD });
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return this.classifier.apply(this.conv.apply(this.aspp.apply(x, ctx), ctx), ctx);
  }

  export(g: OnnxGraph, x: string): string {
    return this.classifier.export(g, this.conv.export(g, this.aspp.export(g, x)));
  }
}

/** torchvision's FCNHead on layer3, used as the auxiliary loss during training. */
export class AuxHead implements Head {
  private readonly conv: ConvBN;
  private readonly classifier: Conv;
  constructor(store: ParamStore, cin: number, classes: number, width = 1) {
    const c = scaled(256, width);
    this.conv = new ConvBN(store, 'aux.conv', { k: 3, cin, cout: c });
    this.classifier = new Conv(store, 'aux.classifier', { k: 1, cin: c, cout: classes, bias: true, std: CLASSIFIER_STD });
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return this.classifier.apply(dropout(this.conv.apply(x, ctx), 0.1, ctx), ctx);
  }

  /** Exported for completeness; DeepLab's export leaves the auxiliary head out (training only). */
  export(g: OnnxGraph, x: string): string {
    return this.classifier.export(g, this.conv.export(g, x));
  }
}

/** v3+ decoder: low-level features reduced to 48 channels, joined with the upsampled encoder output. */
export class DecoderHead {
  private readonly aspp: Aspp;
  private readonly reduce: ConvBN;
  private readonly fuse1: ConvBN;
  private readonly fuse2: ConvBN;
  private readonly classifier: Conv;
  constructor(store: ParamStore, cin: number, lowChannels: number, classes: number, rates: number[], width = 1, private readonly alignCorners = true) {
    this.aspp = new Aspp(store, 'head.aspp', cin, rates, width);
    const c = this.aspp.outChannels;
    const r = scaled(48, width);
    this.reduce = new ConvBN(store, 'head.decoder.reduce', { k: 1, cin: lowChannels, cout: r });
    this.fuse1 = new ConvBN(store, 'head.decoder.fuse1', { k: 3, cin: c + r, cout: c });
    this.fuse2 = new ConvBN(store, 'head.decoder.fuse2', { k: 3, cin: c, cout: c });
    this.classifier = new Conv(store, 'head.classifier', { k: 1, cin: c, cout: classes, bias: true, std: CLASSIFIER_STD });
  }

  apply(x: tf.Tensor4D, low: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    const enc = upsample(this.aspp.apply(x, ctx), low.shape[1], low.shape[2], this.alignCorners);
    const joined = tf.concat([enc, this.reduce.apply(low, ctx)], 3);
    return this.classifier.apply(this.fuse2.apply(this.fuse1.apply(joined, ctx), ctx), ctx);
  }

  export(g: OnnxGraph, x: string, low: string): string {
    const enc = exportUpsample(g, this.aspp.export(g, x), low, this.alignCorners, 'head.decoder.upsample');
    const joined = g.concatChannels([enc, this.reduce.export(g, low)], 'head.decoder.concat');
    return this.classifier.export(g, this.fuse2.export(g, this.fuse1.export(g, joined)));
  }
}
