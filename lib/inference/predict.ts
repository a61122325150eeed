/**
 * THE forward wrapper: an RGB image through a network, as the model host (deeplab-infer),
 * training's evaluation and the CRF search all run it. Normalise, resize to the planned size,
 * mirror (flip), pad to a valid size, forward, then either crop the logits to the cells that
 * cover the image or upsample them to the input and crop to the image, pixel for pixel.
 *
 * Padding value: zeros after normalisation, which is the mean pixel before it for every
 * preprocessing here (mean subtraction, ImageNet mean / std, tanh's 127.5). That is what DeepLab's
 * reference evaluation does (it pads with the mean pixel, then subtracts the mean) and what the
 * training crops are padded with (models/preprocess padValueFor), so the border the network sees
 * when predicting is the one it learnt from. Padding after normalising is exact (the mean in
 * 0..255 of ImageNet is not a whole number) and lets the padding follow the resize. A TF.js graph
 * model normalises inside: it gets raw 0..255 values, padded with the mean pixel (its padValue).
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMap, RawImage, ScoreMap } from '../contract';
import { DeepLab } from '../models/deeplab';
import { upsample } from '../models/layers';
import { normalize, Preprocessing } from '../models/preprocess';
import { bilinearRgb } from '../ops/image-resize';
import { alignsCorners, coveringCells, InferPlan, paddedRun, PlannedRun } from './plan';

/**
 * What the wrapper needs of a network: ours on tfjs (deeplabNet), a TF.js graph model
 * (weights/tfjs-graph's GraphSegmenter, which fits this shape without importing it), or a network
 * run by ONNX Runtime (inference/ort-net), whose forward pass is asynchronous.
 */
export interface SegNet {
  /** RGB 0..255 [n, H, W, 3] to the network's input space: where each network's preprocessing is decided. */
  normalize(rgb: tf.Tensor4D): tf.Tensor4D;
  /** Padding's value in that space: the mean pixel (zero after our normalisations). */
  readonly padValue: number;
  /**
   * Logits [n, h, w, C] of a batch in that space, covering its pixels (cell j on pixel j * logitStride);
   * the caller disposes them and keeps `x`. A tfjs network answers at once, another engine later.
   */
  forward(x: tf.Tensor4D): tf.Tensor4D | Promise<tf.Tensor4D>;
  /**
   * Set by a network whose forward pass answers later (a Promise): it disposes its own intermediate
   * tensors. A tfjs network's are disposed by the wrapper (tf.tidy, which cannot span an await).
   */
  readonly asynchronous?: boolean;
  readonly logitStride: number;
  /** Planned sizes snap to k * planStride + 1 (our networks: the output stride). */
  readonly planStride: number;
  readonly alignCorners: boolean;
}

/** A network whose forward pass runs on tfjs, in the caller's thread (training's evaluation needs it synchronous). */
export interface SyncSegNet extends SegNet {
  forward(x: tf.Tensor4D): tf.Tensor4D;
  readonly asynchronous?: false;
}

/** The network's logits for a batch, its intermediate tensors disposed whichever engine runs it (the caller disposes the logits). */
export async function forwardNet(net: SegNet, x: tf.Tensor4D): Promise<tf.Tensor4D> {
  return net.asynchronous ? net.forward(x) : tf.tidy(() => net.forward(x) as tf.Tensor4D);
}

/** One of our networks with the preprocessing its weights were trained with. */
export function deeplabNet(model: DeepLab, pre: Preprocessing): SyncSegNet {
  return {
    normalize: (rgb) => normalize(rgb, pre),
    padValue: 0,
    forward: (x) => model.forward(x).logits,
    logitStride: model.logitStride,
    planStride: model.spec.outputStride,
    alignCorners: alignsCorners(model.spec),
  };
}

export interface RunOptions {
  /** Also run the mirrored image (second in the batch, mirrored back by the caller). */
  flip?: boolean;
  /** 'stride': logits cropped to the cells covering the image; 'input': upsampled to the run's size. */
  at?: 'stride' | 'input';
}

/** The image as the [1, H, W, 3] int32 tensor every run of it starts from (the caller disposes). */
export function imageTensor(image: RawImage): tf.Tensor4D {
  return tf.tensor4d(image.data, [1, image.height, image.width, 3], 'int32');
}

/**
 * The image at a run's size as a [1, h, w, 3] tensor of 0..255 values (the caller disposes): resized
 * in JavaScript (bilinearRgb, the engine's sample positions), so only the run's size enters the
 * engine. A 4000x3000 photo as int32 then float32 tensors took the wasm backend's heap to 550 MB,
 * which it keeps for good. Normalisation is affine per channel, so normalising after the resize
 * equals normalising before it (to float rounding).
 */
export function runImageTensor(image: RawImage, run: PlannedRun, alignCorners: boolean): tf.Tensor4D {
  if (run.width === image.width && run.height === image.height) return imageTensor(image);
  return tf.tensor4d(bilinearRgb(image, run.width, run.height, alignCorners), [1, run.height, run.width, 3], 'float32');
}

/** The run's input: normalised, resized to the run's size, mirrored (flip) and padded (the caller disposes). */
function runInput(net: SegNet, src: tf.Tensor4D, run: PlannedRun, o: RunOptions): tf.Tensor4D {
  const align = net.alignCorners;
  return tf.tidy(() => {
    const x = upsample(net.normalize(src), run.height, run.width, align);
    // Mirror before padding so both copies keep the image in the top-left corner.
    const both = o.flip ? tf.concat([x, tf.reverse(x, 2)], 0) : x;
    return run.padBottom || run.padRight ? tf.pad(both, [[0, 0], [0, run.padBottom], [0, run.padRight], [0, 0]], net.padValue) : both;
  }) as tf.Tensor4D;
}

/** The run's logits cropped to the image (at the stride, or upsampled to the run's size); disposes `logits`. */
function runOutput(net: SegNet, logits: tf.Tensor4D, run: PlannedRun, o: RunOptions): tf.Tensor4D {
  const align = net.alignCorners;
  const out = tf.tidy(() => {
    const [n, lh, lw, classes] = logits.shape;
    if (o.at === 'input') {
      // Upsampled to the padded input, where cell j lands on pixel j * stride, then cropped.
      const up = upsample(logits, run.height + run.padBottom, run.width + run.padRight, align);
      return run.padBottom || run.padRight ? tf.slice(up, [0, 0, 0, 0], [n, run.height, run.width, classes]) : up.clone();
    }
    const ch = coveringCells(run.height, run.padBottom, lh);
    const cw = coveringCells(run.width, run.padRight, lw);
    return ch === lh && cw === lw ? logits.clone() : tf.slice(logits, [0, 0, 0, 0], [n, ch, cw, classes]);
  });
  logits.dispose();
  return out as tf.Tensor4D;
}

/** One planned run on a tfjs network: logits [n, h, w, C] (n = 2 with flip, the mirrored copy second); the caller disposes. */
export function forwardRun(net: SyncSegNet, src: tf.Tensor4D, run: PlannedRun, o: RunOptions = {}): tf.Tensor4D {
  const x = runInput(net, src, run, o);
  let logits: tf.Tensor4D;
  try {
    logits = tf.tidy(() => net.forward(x));
  } finally {
    x.dispose();
  }
  return runOutput(net, logits, run, o);
}

/** The same run on any network, a tfjs one or one whose forward pass is asynchronous (ONNX Runtime). */
export async function forwardRunAsync(net: SegNet, src: tf.Tensor4D, run: PlannedRun, o: RunOptions = {}): Promise<tf.Tensor4D> {
  const x = runInput(net, src, run, o);
  let logits: tf.Tensor4D;
  try {
    logits = await forwardNet(net, x);
  } finally {
    x.dispose();
  }
  return runOutput(net, logits, run, o);
}

/** Every run of a plan: one logits ScoreMap per scale (and flipped copy), at the logits' stride. */
export async function predictPlan(net: SegNet, image: RawImage, plan: InferPlan): Promise<ScoreMap[]> {
  const maps: ScoreMap[] = [];
  for (const run of plan.runs) {
    const src = runImageTensor(image, run, net.alignCorners);
    let logits: tf.Tensor4D;
    try {
      logits = await forwardRunAsync(net, src, run, { flip: plan.flip });
    } finally {
      src.dispose();
    }
    const [n, height, width, classes] = logits.shape;
    const data = logits.dataSync() as Float32Array;
    logits.dispose();
    const per = height * width * classes;
    for (let b = 0; b < n; b++) {
      const mapData = n === 1 ? data : data.slice(b * per, (b + 1) * per);
      maps.push({ width, height, classes, data: mapData, kind: 'logits', stride: net.logitStride, scale: run.scale, flipped: b === 1 });
    }
  }
  return maps;
}

/** Logits at the image's own size, [1, H, W, C] (the caller disposes): evaluation's prediction. */
export function logitsAtImageSize(model: DeepLab, pre: Preprocessing, image: RawImage): tf.Tensor4D {
  const src = imageTensor(image);
  try {
    return forwardRun(deeplabNet(model, pre), src, paddedRun(image.width, image.height, model.spec.outputStride), { at: 'input' });
  } finally {
    src.dispose();
  }
}

export function predictLabels(model: DeepLab, pre: Preprocessing, image: RawImage): LabelMap {
  const ids = tf.tidy(() => tf.argMax(logitsAtImageSize(model, pre, image), -1));
  const data = Uint8Array.from(ids.dataSync());
  ids.dispose();
  return { width: image.width, height: image.height, data, ignoreIndex: 255 };
}

/** Class probabilities at the image's size as a ScoreMap (input of the dense CRF). */
export function predictProbs(model: DeepLab, pre: Preprocessing, image: RawImage): ScoreMap {
  const p = tf.tidy(() => tf.softmax(logitsAtImageSize(model, pre, image)));
  const data = p.dataSync() as Float32Array;
  const classes = p.shape[3];
  p.dispose();
  return { width: image.width, height: image.height, classes, data: Float32Array.from(data), kind: 'probs', stride: 1 };
}
