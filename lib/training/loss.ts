/**
 * The segmentation loss: pixel-wise softmax cross entropy, void pixels (255) ignored, averaged
 * over the valid pixels (PyTorch's CrossEntropyLoss(ignore_index=255)). Two geometries:
 * - 'labels' (DeepLab v1/v2): labels nearest-downsampled to the logits' grid. The grids are
 *   aligned at the corners (a 321 crop's 41 logits sit on pixels 0, 8, ..., 320, as in Caffe).
 * - 'logits' (v3/v3+): logits bilinearly upsampled to the label size.
 * And DeepLab v2's multi-scale training: the network at scales 1, 0.75 and 0.5 plus the
 * element-wise max of the three (upsampled to scale 1), each with its own loss, summed.
 */
import * as tf from '@tensorflow/tfjs';
import { trainingOps } from '../engine/batch-norm';
import { softmaxCrossEntropy } from '../engine/softmax-ce';
import { upsample } from '../models/layers';

export const IGNORE = 255;

/**
 * Mean cross entropy of logits [N, h, w, C] against int32 labels [N, h, w]; ignored pixels excluded.
 * With class weights, each pixel counts with its class's weight and the mean is over the weights
 * (PyTorch's CrossEntropyLoss(weight=...)).
 */
export function crossEntropy(logits: tf.Tensor4D, labels: tf.Tensor3D, ignore = IGNORE, classWeights?: ArrayLike<number>): tf.Scalar {
  return tf.tidy(() => {
    const C = logits.shape[3];
    const valid = tf.notEqual(labels, ignore);
    const safe = tf.where(valid, labels, tf.zerosLike(labels));
    const oneHot = tf.oneHot(tf.reshape(safe, [-1]), C).reshape(logits.shape) as tf.Tensor4D;
    const nll = tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), -1));
    const validF = tf.cast(valid, 'float32');
    const w = classWeights ? tf.mul(validF, tf.gather(tf.tensor1d(Array.from(classWeights), 'float32'), safe)) : validF;
    // An all-void batch contributes zero loss (and zero gradient), not NaN.
    return tf.div(tf.sum(tf.mul(nll, w)), tf.maximum(tf.sum(w), 1)) as tf.Scalar;
  });
}

/**
 * crossEntropy as one op on the host backends (lib/engine/softmax-ce: WebAssembly SIMD on wasm),
 * its gradient computed there too. Labels: one per pixel (N*h*w), as JS numbers.
 */
export function fusedCrossEntropy(logits: tf.Tensor4D, labels: ArrayLike<number>, ignore = IGNORE, classWeights?: ArrayLike<number>): tf.Scalar {
  return softmaxCrossEntropy(logits, labels, ignore, classWeights);
}

/** Whether crossEntropy runs fused (fusedCrossEntropy) on the active backend. */
export function usesFusedCrossEntropy(): boolean {
  const b = tf.getBackend();
  return trainingOps.fusedSoftmaxCrossEntropy && (b === 'wasm' || b === 'cpu');
}

/**
 * Class weights that lift rare classes: 1 / sqrt(frequency), scaled so that the pixels counted
 * have a mean weight of 1 (the loss keeps its scale). Classes never seen get the largest weight
 * of those seen. `counts[c]`: pixels of class c.
 */
export function sqrtInverseFrequencyWeights(counts: ArrayLike<number>): number[] {
  const total = Array.from(counts).reduce((a, b) => a + b, 0);
  if (total === 0) return Array.from(counts, () => 1);
  const raw = Array.from(counts, (n) => (n > 0 ? 1 / Math.sqrt(n / total) : 0));
  const maxSeen = Math.max(...raw);
  const w = raw.map((r) => (r > 0 ? r : maxSeen));
  const mean = Array.from(counts).reduce((a, n, c) => a + n * w[c], 0) / total;
  return w.map((v) => v / mean);
}

/** Source index of output cell i when n cells span the same extent as N pixels, corners aligned. */
function alignedIndex(i: number, n: number, N: number): number {
  return n > 1 ? Math.round((i * (N - 1)) / (n - 1)) : 0;
}

/** Nearest-neighbour resize of a batch of label maps [n, H, W] to [n, h, w], corners aligned. */
export function resizeLabelsNearest(labels: Uint8Array, n: number, H: number, W: number, h: number, w: number): Uint8Array {
  if (h === H && w === W) return labels;
  const out = new Uint8Array(n * h * w);
  const xs = new Int32Array(w);
  for (let x = 0; x < w; x++) xs[x] = alignedIndex(x, w, W);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      const src = b * H * W + alignedIndex(y, h, H) * W;
      const dst = (b * h + y) * w;
      for (let x = 0; x < w; x++) out[dst + x] = labels[src + xs[x]];
    }
  }
  return out;
}

/** Label maps of a batch, kept on the JS side so each loss can resize them as it needs. */
export interface LabelBatch {
  data: Uint8Array;
  n: number;
  height: number;
  width: number;
}

export interface LossGeometry {
  /** 'labels': downsample labels to the logits; 'logits': upsample logits to the labels. */
  at: 'logits' | 'labels';
  /** Corner-aligned bilinear upsampling or half-pixel centres: lib/inference/plan alignsCorners. */
  alignCorners: boolean;
  /** Per-class loss weights (none: every pixel counts once). */
  classWeights?: ArrayLike<number>;
}

/** Cross entropy of logits against a label batch under a geometry. */
export function segmentationLoss(logits: tf.Tensor4D, labels: LabelBatch, g: LossGeometry): tf.Scalar {
  return tf.tidy(() => {
    const [n, h, w] = logits.shape;
    if (g.at === 'labels') {
      const small = resizeLabelsNearest(labels.data, n, labels.height, labels.width, h, w);
      if (usesFusedCrossEntropy()) return fusedCrossEntropy(logits, small, IGNORE, g.classWeights);
      return crossEntropy(logits, tf.tensor3d(small, [n, h, w], 'int32'), IGNORE, g.classWeights);
    }
    const up = upsample(logits, labels.height, labels.width, g.alignCorners);
    if (usesFusedCrossEntropy()) return fusedCrossEntropy(up, labels.data, IGNORE, g.classWeights);
    return crossEntropy(up, tf.tensor3d(labels.data, [n, labels.height, labels.width], 'int32'), IGNORE, g.classWeights);
  });
}

/** The MSC scales of DeepLab v2 and the input size of each: corner-aligned, so 321 -> 241, 161. */
export const MSC_SCALES = [1, 0.75, 0.5] as const;
export function mscSize(size: number, scale: number): number {
  return Math.max(1, Math.round(scale * (size - 1)) + 1);
}

/**
 * Max fusion of multi-scale logits: every map upsampled (corner-aligned) to the first map's
 * size, then the element-wise maximum.
 */
export function maxFusion(maps: tf.Tensor4D[], alignCorners = true): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = maps[0].shape;
    let out = maps[0];
    for (let i = 1; i < maps.length; i++) {
      const m = maps[i];
      out = tf.maximum(out, upsample(m, h, w, alignCorners));
    }
    return out;
  });
}

/**
 * DeepLab v2 MSC loss: `forward` is the network on a batch; x the preprocessed input at scale 1.
 * Loss = L(scale 1) + L(0.75) + L(0.5) + L(max fusion).
 */
export function mscLoss(forward: (x: tf.Tensor4D) => tf.Tensor4D, x: tf.Tensor4D, labels: LabelBatch, g: LossGeometry): tf.Scalar {
  return tf.tidy(() => {
    const [, H, W] = x.shape;
    const outs = MSC_SCALES.map((s) => {
      const xs = s === 1 ? x : tf.image.resizeBilinear(x, [mscSize(H, s), mscSize(W, s)], true);
      return forward(xs);
    });
    const fused = maxFusion(outs, g.alignCorners);
    const terms = [...outs, fused].map((l) => segmentationLoss(l, labels, g));
    return tf.addN(terms) as tf.Scalar;
  });
}
