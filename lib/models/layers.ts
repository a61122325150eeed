/**
 * The building blocks of the zoo: small classes that own their parameters (through a
 * ParamStore, under a dotted name) and apply them in a forward pass.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormTraining, trainingOps } from '../engine/batch-norm';
import { conv2d, depthwiseConv2d, Padding4 } from '../engine/conv';
import { OnnxGraph } from './onnx/graph';
import { ParamStore } from './params';

export interface Ctx {
  training: boolean;
  /** BN uses its running statistics even while training (the usual DeepLab fine-tuning). */
  freezeBN: boolean;
  /** Running-statistic updates collected during a training pass, applied by the trainer. */
  statUpdates?: { variable: tf.Variable; value: tf.Tensor }[];
  /** A fresh seed for each dropout mask; the trainer derives them from its position so a resumed run draws the same masks. */
  dropoutSeed?: () => number;
}

export const INFERENCE: Ctx = { training: false, freezeBN: true };

export interface ConvSpec {
  k: number;
  cin: number;
  cout: number;
  stride?: number;
  dilation?: number;
  bias?: boolean;
  /** Classifiers start from N(0, 0.01) as in DeepLab; everything else He normal. */
  std?: number;
}

/** Symmetric "same" padding for odd kernels; stride-2 convs pad like PyTorch and Caffe. */
function padFor(k: number, dilation: number): [[number, number], [number, number]] {
  const p = ((k - 1) * dilation) / 2;
  return [[p, p], [p, p]];
}

/** A BN at inference as a per-channel affine map y = x * scale + shift (folded into the conv before it). */
export interface AffineFold {
  scale: Float64Array;
  shift: Float64Array;
}

/**
 * An ONNX Conv node computing what lib/engine/conv's conv2d computes at inference: the same
 * explicit symmetric padding, stride and dilation (1 for a 1x1 kernel, as the engine takes it),
 * with a following BN folded in: W' = W * scale, b' = b * scale + shift.
 * `kernel` is tfjs's [kh, kw, cin, cout] (or a depthwise [kh, kw, C, 1] with `depthwise`).
 */
function exportConv(g: OnnxGraph, name: string, x: string, kernel: tf.Variable, bias: tf.Variable | undefined, fold: AffineFold | undefined,
  o: { stride: number; dilation: number; pad: Padding4; depthwise: boolean }): string {
  const [kh, kw, cin, m] = kernel.shape;
  const cout = o.depthwise ? cin : m;
  const inPerGroup = o.depthwise ? 1 : cin;
  const src = kernel.dataSync() as Float32Array;
  const b = bias ? (bias.dataSync() as Float32Array) : undefined;
  // tfjs HWIO (depthwise: HWC1) -> ONNX OIHW (depthwise: C1HW, group C).
  const w = new Float32Array(cout * inPerGroup * kh * kw);
  for (let ky = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      for (let i = 0; i < cin; i++) {
        for (let j = 0; j < m; j++) {
          const out = o.depthwise ? i : j;
          const within = o.depthwise ? 0 : i;
          const scale = fold ? fold.scale[out] : 1;
          w[((out * inPerGroup + within) * kh + ky) * kw + kx] = src[((ky * kw + kx) * cin + i) * m + j] * scale;
        }
      }
    }
  }
  const inputs = [x, g.floats(`${name}.weight`, [cout, inPerGroup, kh, kw], w)];
  if (b || fold) {
    const folded = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      const bc = b ? b[c] : 0;
      folded[c] = fold ? bc * fold.scale[c] + fold.shift[c] : bc;
    }
    inputs.push(g.floats(`${name}.bias`, [cout], folded));
  }
  const dilation = kh === 1 && kw === 1 ? 1 : o.dilation;
  const [[t, bt], [l, r]] = o.pad;
  return g.node('Conv', inputs, {
    kernel_shape: [kh, kw],
    strides: [o.stride, o.stride],
    dilations: [dilation, dilation],
    pads: [t, l, bt, r],
    group: o.depthwise ? cin : 1,
  }, name);
}

export class Conv {
  readonly kernel: tf.Variable;
  readonly bias?: tf.Variable;
  private readonly stride: number;
  private readonly dilation: number;

  constructor(store: ParamStore, readonly name: string, s: ConvSpec) {
    this.stride = s.stride ?? 1;
    this.dilation = s.dilation ?? 1;
    const init = s.std !== undefined ? { kind: 'normal' as const, std: s.std } : { kind: 'he' as const, fanIn: s.k * s.k * s.cin };
    this.kernel = store.weight(`${name}.weight`, [s.k, s.k, s.cin, s.cout], init);
    if (s.bias) this.bias = store.weight(`${name}.bias`, [s.cout], { kind: 'const', value: 0 });
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    const k = this.kernel.shape[0];
    const y = conv2d(x, this.kernel as tf.Tensor4D, { stride: this.stride, dilation: this.dilation, pad: padFor(k, this.dilation), training: ctx.training });
    return this.bias ? tf.add(y, this.bias) : y;
  }

  /** `fold`: the BN that follows, folded into the weights and bias. */
  export(g: OnnxGraph, x: string, fold?: AffineFold): string {
    const k = this.kernel.shape[0];
    return exportConv(g, this.name, x, this.kernel, this.bias, fold, { stride: this.stride, dilation: this.dilation, pad: padFor(k, this.dilation), depthwise: false });
  }
}

export class DepthwiseConv {
  readonly kernel: tf.Variable;
  /** `padded` false: the caller has padded the input already (valid convolution). */
  constructor(store: ParamStore, readonly name: string, k: number, channels: number, private stride = 1, private dilation = 1, private readonly padded = true) {
    this.kernel = store.weight(`${name}.weight`, [k, k, channels, 1], { kind: 'he', fanIn: k * k });
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    const k = this.kernel.shape[0];
    const pad = this.padded ? padFor(k, this.dilation) : [[0, 0], [0, 0]] as [[number, number], [number, number]];
    return depthwiseConv2d(x, this.kernel as tf.Tensor4D, { stride: this.stride, dilation: this.dilation, pad, training: ctx.training });
  }

  export(g: OnnxGraph, x: string, fold?: AffineFold): string {
    const k = this.kernel.shape[0];
    const pad = this.padded ? padFor(k, this.dilation) : [[0, 0], [0, 0]] as Padding4;
    return exportConv(g, this.name, x, this.kernel, undefined, fold, { stride: this.stride, dilation: this.dilation, pad, depthwise: true });
  }
}

export class BatchNorm {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  readonly mean: tf.Variable;
  readonly variance: tf.Variable;

  constructor(store: ParamStore, readonly name: string, channels: number, private readonly eps = 1e-5, private readonly momentum = 0.1) {
    this.gamma = store.weight(`${name}.gamma`, [channels], { kind: 'const', value: 1 });
    this.beta = store.weight(`${name}.beta`, [channels], { kind: 'const', value: 0 });
    this.mean = store.stat(`${name}.running_mean`, [channels], 0);
    this.variance = store.stat(`${name}.running_var`, [channels], 1);
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    if (!ctx.training || ctx.freezeBN) {
      return tf.batchNorm(x, this.mean, this.variance, this.beta, this.gamma, this.eps) as tf.Tensor4D;
    }
    const m = this.momentum;
    const record = (mean: tf.Tensor, variance: tf.Tensor) => ctx.statUpdates?.push(
      { variable: this.mean, value: tf.keep(tf.add(tf.mul(this.mean, 1 - m), tf.mul(mean, m))) },
      { variable: this.variance, value: tf.keep(tf.add(tf.mul(this.variance, 1 - m), tf.mul(variance, m))) },
    );
    if (trainingOps.fusedBatchNorm) {
      return batchNormTraining(x, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, this.eps, (s) => {
        if (s.host && ctx.statUpdates) {
          // Statistics already on the host (wasm): the running averages in JS, no kernels.
          const host = s.host;
          const blend = (running: tf.Variable, batch: Float64Array) => {
            const r = running.dataSync();
            return tf.keep(tf.tensor1d(Float32Array.from(batch, (v, i) => r[i] * (1 - m) + v * m)));
          };
          ctx.statUpdates.push({ variable: this.mean, value: blend(this.mean, host.mean) }, { variable: this.variance, value: blend(this.variance, host.variance) });
        } else {
          tf.tidy(() => record(s.mean, s.variance));
        }
        tf.dispose([s.mean, s.variance]);
      });
    }
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    record(mean, variance);
    return tf.batchNorm(x, mean, variance, this.beta, this.gamma, this.eps) as tf.Tensor4D;
  }

  /** Inference BN (running statistics) as an affine map, for folding into the conv before it. */
  fold(): AffineFold {
    const [g, b, m, v] = [this.gamma, this.beta, this.mean, this.variance].map((t) => t.dataSync() as Float32Array);
    const scale = new Float64Array(g.length);
    const shift = new Float64Array(g.length);
    for (let c = 0; c < g.length; c++) {
      scale[c] = g[c] / Math.sqrt(v[c] + this.eps);
      shift[c] = b[c] - m[c] * scale[c];
    }
    return { scale, shift };
  }
}

export type Activation = 'relu' | 'relu6' | 'none';

function activate(x: tf.Tensor4D, act: Activation): tf.Tensor4D {
  if (act === 'relu') return tf.relu(x);
  if (act === 'relu6') return tf.relu6(x);
  return x;
}

function exportActivation(g: OnnxGraph, x: string, act: Activation, name: string): string {
  if (act === 'relu') return g.relu(x, `${name}.relu`);
  if (act === 'relu6') return g.relu6(x, `${name}.relu6`);
  return x;
}

/** conv (no bias) + BN + activation: the unit of ResNet, MobileNet and the v3 heads. */
export class ConvBN {
  readonly conv: Conv;
  readonly bn: BatchNorm;
  /** `name` prefixes both parts (`name.conv`, `name.bn`) unless explicit names are given. */
  constructor(store: ParamStore, name: string | [string, string], s: ConvSpec, private readonly act: Activation = 'relu') {
    const [convName, bnName] = typeof name === 'string' ? [`${name}.conv`, `${name}.bn`] : name;
    this.conv = new Conv(store, convName, { ...s, bias: false });
    this.bn = new BatchNorm(store, bnName, s.cout);
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return activate(this.bn.apply(this.conv.apply(x, ctx), ctx), this.act);
  }

  export(g: OnnxGraph, x: string): string {
    return exportActivation(g, this.conv.export(g, x, this.bn.fold()), this.act, this.conv.name);
  }
}

export class DepthwiseBN {
  readonly conv: DepthwiseConv;
  readonly bn: BatchNorm;
  constructor(store: ParamStore, name: string, k: number, channels: number, stride: number, dilation: number, private readonly act: Activation = 'relu6', padded = true) {
    this.conv = new DepthwiseConv(store, `${name}.conv`, k, channels, stride, dilation, padded);
    this.bn = new BatchNorm(store, `${name}.bn`, channels);
  }

  apply(x: tf.Tensor4D, ctx: Ctx): tf.Tensor4D {
    return activate(this.bn.apply(this.conv.apply(x, ctx), ctx), this.act);
  }

  export(g: OnnxGraph, x: string): string {
    return exportActivation(g, this.conv.export(g, x, this.bn.fold()), this.act, this.conv.name);
  }
}

/** Output size of a pooling window in PyTorch/Caffe ceil mode. */
export function ceilPoolSize(size: number, k: number, s: number, p: number): number {
  let out = Math.ceil((size + 2 * p - k) / s) + 1;
  if ((out - 1) * s >= size + p) out--; // the last window may not start inside the padding
  return out;
}

/**
 * Max pooling with explicit padding (and optionally ceil mode). Inputs follow a ReLU, so zero
 * padding is the same as -inf padding.
 */
export function maxPool(x: tf.Tensor4D, k: number, s: number, p: number, ceil = false): tf.Tensor4D {
  const [, h, w] = x.shape;
  const outH = ceil ? ceilPoolSize(h, k, s, p) : Math.floor((h + 2 * p - k) / s) + 1;
  const outW = ceil ? ceilPoolSize(w, k, s, p) : Math.floor((w + 2 * p - k) / s) + 1;
  const extraH = Math.max(0, (outH - 1) * s + k - (h + 2 * p));
  const extraW = Math.max(0, (outW - 1) * s + k - (w + 2 * p));
  const padded = p + extraH + extraW > 0 ? tf.pad(x, [[0, 0], [p, p + extraH], [p, p + extraW], [0, 0]]) : x;
  return tf.maxPool(padded, k, s, 'valid');
}

/**
 * maxPool in ONNX for any input size: zero padding, then a valid MaxPool. In ceil mode the
 * bottom/right get s - 1 more rows and columns, so the floor-mode window count of the padded map
 * is the ceil-mode count; the rule that drops a last window starting in the padding can then
 * never apply (it needs p + s > k), which is checked. The windows are the same as maxPool's and
 * the extra zeros lie outside every one of them.
 */
export function exportMaxPool(g: OnnxGraph, x: string, k: number, s: number, p: number, ceil = false, name = 'maxpool'): string {
  if (ceil && p + s > k) throw new Error(`ONNX export: ceil-mode max pooling with kernel ${k}, stride ${s}, padding ${p} is not supported (needs padding + stride <= kernel)`);
  const extra = ceil ? s - 1 : 0;
  const padded = g.padSpatial(x, [[p, p + extra], [p, p + extra]], `${name}.pad`);
  return g.node('MaxPool', [padded], { kernel_shape: [k, k], strides: [s, s] }, name);
}

/** Bilinear resize of a feature map (NHWC). */
export function upsample(x: tf.Tensor4D, height: number, width: number, alignCorners: boolean): tf.Tensor4D {
  if (x.shape[1] === height && x.shape[2] === width) return x;
  return tf.image.resizeBilinear(x, [height, width], alignCorners, !alignCorners);
}

/**
 * upsample in ONNX, to the spatial size of `like` (taken from its shape, so the graph serves any
 * input size). tfjs's alignCorners is ONNX's align_corners; halfPixelCenters is half_pixel. A
 * resize to the same size is the identity in both modes, as upsample's shortcut.
 */
export function exportUpsample(g: OnnxGraph, x: string, like: string, alignCorners: boolean, name = 'resize'): string {
  const nc = g.node('Shape', [x], { start: 0, end: 2 }, `${name}.nc`);
  const sizes = g.node('Concat', [nc, g.spatialShape(like, `${name}.hw`)], { axis: 0 }, `${name}.sizes`);
  return g.node('Resize', [x, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: alignCorners ? 'align_corners' : 'half_pixel' }, name);
}

export function dropout(x: tf.Tensor4D, rate: number, ctx: Ctx): tf.Tensor4D {
  return ctx.training && rate > 0 ? (tf.dropout(x, rate, undefined, ctx.dropoutSeed?.()) as tf.Tensor4D) : x;
}

/** Channel count scaled by the width multiplier, at least 1 (small variants for tests and demos). */
export function scaled(channels: number, width: number, divisor = 1): number {
  if (width === 1) return channels;
  const c = Math.max(divisor, Math.round((channels * width) / divisor) * divisor);
  return Math.max(1, c);
}
