/**
 * The gradients a DeepLab training step needs, on the wasm backend: each checked against
 * finite differences and against the cpu backend's gradients.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/tf-setup';
import { registerTrainingKernels } from '../../lib/engine/wasm-grad-kernels';
import { conv2d, ConvOptions } from '../../lib/engine/conv';
import { assertGradients, randomTensor } from '../../lib/engine/gradcheck';
import { seededRandom } from '../../lib/runtime/random';

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

/** Distinct values spaced 0.1 apart, shuffled: no ties or kinks within the finite-difference step. */
function separated(shape: number[], seed: number, offset = 0): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const rnd = seededRandom(seed);
  const v = Array.from({ length: n }, (_, i) => offset + (i - n / 2) * 0.1 + 0.05);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [v[i], v[j]] = [v[j], v[i]];
  }
  return tf.tensor(v, shape, 'float32');
}

/** Gradients of sum(f(xs) * w) on a backend, as plain arrays. */
async function gradsOn(backend: string, f: Fn, make: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = make();
    const y = f(...xs);
    const w = randomTensor(y.shape, 99);
    return tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)))(xs).map((g) => Float32Array.from(g.dataSync()));
  });
}

/** Checks f's gradients on wasm against finite differences. */
async function againstFiniteDifferences(
  label: string, f: Fn, make: () => tf.Tensor[], tolerance = 1e-3, epsilon?: number, maxEntries?: number,
): Promise<void> {
  await tf.setBackend('wasm');
  const xs = make();
  try {
    assertGradients(f, xs, { label, tolerance, epsilon, maxEntries });
  } finally {
    tf.dispose(xs);
  }
}

/** Checks f's gradients on wasm against the cpu backend's. */
async function againstCpu(label: string, f: Fn, make: () => tf.Tensor[]): Promise<void> {
  const w = await gradsOn('wasm', f, make);
  const c = await gradsOn('cpu', f, make);
  await tf.setBackend('wasm');
  w.forEach((g, i) => {
    let scale = 1e-6;
    let worst = 0;
    for (let k = 0; k < g.length; k++) {
      scale = Math.max(scale, Math.abs(c[i][k]));
      worst = Math.max(worst, Math.abs(g[k] - c[i][k]));
    }
    assert.ok(worst <= 1e-5 * scale, `${label}: wasm gradient ${i} differs from cpu by ${worst} (scale ${scale})`);
  });
}

async function check(label: string, f: Fn, make: () => tf.Tensor[], tolerance = 1e-3, epsilon?: number): Promise<void> {
  await againstFiniteDifferences(label, f, make, tolerance, epsilon);
  await againstCpu(label, f, make);
}

/** Labels 0..classes-1 with every third pixel the ignore label 255. */
function labelsWithIgnore(n: number, h: number, w: number, classes: number, seed: number): tf.Tensor {
  const rnd = seededRandom(seed);
  const v = Int32Array.from({ length: n * h * w }, (_, i) => (i % 3 === 1 ? 255 : Math.floor(rnd() * classes)));
  return tf.tensor(v, [n, h, w], 'int32');
}

/** Mean softmax cross-entropy over the pixels whose label is not 255, as DeepLab trains. */
function maskedCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor {
  const classes = logits.shape[logits.rank - 1];
  const valid = tf.cast(tf.notEqual(labels, 255), 'float32');
  const safe = tf.where(tf.notEqual(labels, 255), labels, tf.zerosLike(labels));
  const onehot = tf.oneHot(tf.reshape(safe, [-1]), classes);
  const perPixel = tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(tf.reshape(logits, [-1, classes]))), 1));
  const v = tf.reshape(valid, [-1]);
  return tf.div(tf.sum(tf.mul(perPixel, v)), tf.maximum(tf.sum(v), 1));
}

describe('lib/engine: gradients of a DeepLab training step on wasm', () => {
  onBackend('wasm');
  // The cpu reference needs the same fixed ResizeBilinearGrad / AvgPoolGrad (initBackend('cpu') would register them).
  before(() => registerTrainingKernels('cpu'));

  it('batch norm with batch moments (training mode)', () => check('batchNorm',
    (x, gamma, beta) => {
      const m = tf.moments(x, [0, 1, 2]);
      return tf.batchNorm(x as tf.Tensor4D, m.mean, m.variance, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-3);
    },
    () => [randomTensor([2, 5, 5, 2], 1), randomTensor([2], 2, 0.5, 1.5), randomTensor([2], 3)]));

  it('max pool with explicit padding (tf.pad + maxPool valid)', () => check('maxPool padded',
    (x) => tf.maxPool(tf.pad(x as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]], -1e4), 3, 2, 'valid'),
    () => [separated([1, 5, 5, 2], 4)]));

  it('max pool same', () => check('maxPool same', (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same'), () => [separated([1, 6, 5, 2], 5)]));

  it('avg pool: valid, same and numeric padding (the forward divides by the cells inside the input)', async () => {
    await check('avgPool valid', (x) => tf.avgPool(x as tf.Tensor4D, 2, 1, 'valid'), () => [randomTensor([1, 5, 5, 2], 6)]);
    await check('avgPool same s2', (x) => tf.avgPool(x as tf.Tensor4D, 3, 2, 'same'), () => [randomTensor([2, 5, 5, 2], 7)]);
    await check('avgPool same s1', (x) => tf.avgPool(x as tf.Tensor4D, 3, 1, 'same'), () => [randomTensor([1, 6, 5, 2], 7)]);
    await check('avgPool same 2x2 s2', (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'same'), () => [randomTensor([1, 5, 7, 2], 7)]);
    await check('avgPool pad 1', (x) => tf.avgPool(x as tf.Tensor4D, 3, 2, 1), () => [randomTensor([1, 7, 5, 2], 7)]);
    // Caffe-style counting of the zero padding, as the v1 head does it.
    await check('avgPool padded valid', (x) => tf.avgPool(tf.pad(x as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, 'valid'),
      () => [randomTensor([1, 5, 5, 2], 7)]);
  });

  for (const [alignCorners, halfPixelCenters] of [[true, false], [false, false], [false, true]]) {
    it(`resizeBilinear, alignCorners ${alignCorners}, halfPixelCenters ${halfPixelCenters}: up, down, non-square`, async () => {
      const resize = (size: [number, number]) => (x: tf.Tensor) =>
        tf.image.resizeBilinear(x as tf.Tensor4D, size, alignCorners, halfPixelCenters);
      await check('resize up', resize([9, 11]), () => [randomTensor([1, 5, 5, 2], 8)]);
      await check('resize down', resize([3, 4]), () => [randomTensor([2, 7, 6, 2], 9)]);
      await check('resize non-square up', resize([13, 8]), () => [randomTensor([1, 4, 6, 3], 10)]);
      await check('resize same size', resize([4, 6]), () => [randomTensor([1, 4, 6, 1], 11)]);
    });
  }

  it('relu and relu6 (away from the kinks)', async () => {
    await check('relu', (x) => tf.relu(x), () => [separated([1, 5, 5, 2], 10)]);
    // Values come within 0.05 of the kink at 6, where the relative step of 1e-2 would be 0.06.
    await check('relu6', (x) => tf.relu6(x), () => [separated([1, 5, 5, 2], 11, 4)], 1e-3, 2e-3);
  });

  it('concat along channels', () => check('concat',
    (a, b) => tf.concat([a, tf.mul(b, 2)], 3), () => [randomTensor([1, 5, 5, 2], 12), randomTensor([1, 5, 5, 3], 13)]));

  it('mean over the spatial axes (image pooling), keepDims', () => check('mean',
    (x) => tf.mean(x, [1, 2], true), () => [randomTensor([2, 5, 5, 2], 14)]));

  it('spaceToBatchND / batchToSpaceND with padding and crops', () => check('space-to-batch',
    (x) => tf.batchToSpaceND(tf.mul(tf.spaceToBatchND(x, [2, 2], [[1, 2], [0, 1]]), 3), [2, 2], [[0, 1], [1, 0]]),
    () => [randomTensor([2, 5, 5, 2], 15)]));

  it('softmax cross-entropy with ignored pixels (value and gradient)', async () => {
    const labels = labelsWithIgnore(1, 5, 5, 3, 16);
    await check('masked cross-entropy', (logits) => maskedCrossEntropy(logits, labels), () => [randomTensor([1, 5, 5, 3], 17, -2, 2)]);
    await check('tf.losses.softmaxCrossEntropy with weights', (logits) => {
      const valid = tf.reshape(tf.cast(tf.notEqual(labels, 255), 'float32'), [-1]);
      const onehot = tf.oneHot(tf.reshape(tf.where(tf.notEqual(labels, 255), labels, tf.zerosLike(labels)), [-1]), 3);
      return tf.losses.softmaxCrossEntropy(onehot, tf.reshape(logits, [-1, 3]), valid);
    }, () => [randomTensor([1, 5, 5, 3], 18, -2, 2)]);
    // The value against a hand-written reference.
    const logits = randomTensor([1, 5, 5, 3], 17, -2, 2);
    const loss = maskedCrossEntropy(logits, labels);
    const l = logits.dataSync();
    const y = labels.dataSync();
    let sum = 0;
    let count = 0;
    for (let p = 0; p < 25; p++) {
      if (y[p] === 255) continue;
      const z = [l[3 * p], l[3 * p + 1], l[3 * p + 2]];
      const lse = Math.log(z.reduce((a, v) => a + Math.exp(v), 0));
      sum += lse - z[y[p]];
      count++;
    }
    assert.ok(Math.abs(loss.dataSync()[0] - sum / count) < 1e-5);
    tf.dispose([labels, logits, loss]);
  });

  it('gather of the valid pixels (its gradient is UnsortedSegmentSum)', async () => {
    const idx = tf.tensor1d([0, 2, 3, 5, 7, 8, 11, 3], 'int32');
    await check('gather', (x) => tf.logSoftmax(tf.gather(tf.reshape(x, [-1, 2]), idx)), () => [randomTensor([1, 3, 4, 2], 19)]);
    idx.dispose();
  });

  it('a small DeepLab-like step end to end: atrous conv, BN, relu, ASPP concat, 1x1 classifier, upsample, masked loss', async () => {
    const labels = labelsWithIgnore(2, 9, 9, 3, 20);
    const train = (o: Partial<ConvOptions>): ConvOptions => ({ stride: 1, dilation: 1, pad: [[0, 0], [0, 0]], training: true, ...o });
    const step = (activation: (t: tf.Tensor4D) => tf.Tensor4D): Fn => (x, w1, w2, w3, gamma, beta) => {
      const a = conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, train({ stride: 2, pad: [[1, 1], [1, 1]] }));
      const m = tf.moments(a, [0, 1, 2]);
      const b = activation(tf.batchNorm(a, m.mean, m.variance, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-3) as tf.Tensor4D);
      const r1 = conv2d(b, w2 as tf.Tensor4D, train({ dilation: 2, pad: [[2, 2], [2, 2]] }));
      const r2 = tf.tile(tf.mean(b, [1, 2], true), [1, 5, 5, 1]);
      const logits = conv2d(tf.concat([r1, r2], 3) as tf.Tensor4D, w3 as tf.Tensor4D, train({}));
      return maskedCrossEntropy(tf.image.resizeBilinear(logits, [9, 9], false, true), labels);
    };
    const make = (): tf.Tensor[] => [randomTensor([2, 9, 9, 3], 21), randomTensor([3, 3, 3, 4], 22), randomTensor([3, 3, 4, 4], 23),
      randomTensor([1, 1, 8, 3], 24), randomTensor([4], 25, 0.5, 1.5), randomTensor([4], 26)];
    // Batch-normalised pre-activations crowd around relu's kink, where finite differences are
    // meaningless: the finite-difference check runs the step without it (relu is checked on
    // its own above), the comparison with cpu runs the real step. The loss is a mean over
    // ~100 pixels, so float32 rounding limits the agreement to ~1e-3.
    await againstFiniteDifferences('deeplab step (linear activation)', step((t) => t), make, 5e-3, undefined, 40);
    await againstCpu('deeplab step', step((t) => tf.relu(t)), make);
    labels.dispose();
  });
});
