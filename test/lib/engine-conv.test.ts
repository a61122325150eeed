import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/tf-setup';
import { conv2d, depthwiseConv2d, ConvOptions, Padding4 } from '../../lib/engine/conv';
import { assertGradients, randomTensor } from '../../lib/engine/gradcheck';

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let scale = 1e-6;
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    scale = Math.max(scale, Math.abs(y[i]));
    worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst / scale;
}

interface Case { name: string; x: number[]; k: [number, number]; rate: number; pad: Padding4 }

const CASES: Case[] = [
  { name: '3x3 rate 2, symmetric pad, batch 2', x: [2, 9, 9, 3], k: [3, 3], rate: 2, pad: [[2, 2], [2, 2]] },
  { name: '3x3 rate 2, asymmetric pad, odd/even sizes', x: [2, 7, 10, 2], k: [3, 3], rate: 2, pad: [[2, 1], [0, 3]] },
  { name: '3x3 rate 3, no pad', x: [1, 11, 8, 2], k: [3, 3], rate: 3, pad: [[0, 0], [0, 0]] },
  { name: '3x3 rate 4, pad larger than needed', x: [2, 6, 7, 2], k: [3, 3], rate: 4, pad: [[5, 4], [4, 6]] },
  { name: '5x3 rate 2, asymmetric', x: [1, 12, 9, 2], k: [5, 3], rate: 2, pad: [[3, 5], [2, 2]] },
  // ASPP at a high rate on a small map: most taps land in the padding.
  { name: '3x3 rate 6 on a 5x5 map (ASPP-like)', x: [2, 5, 5, 2], k: [3, 3], rate: 6, pad: [[6, 6], [6, 6]] },
  { name: '3x3 rate 12 on a 9x9 map (ASPP-like)', x: [1, 9, 9, 3], k: [3, 3], rate: 12, pad: [[12, 12], [12, 12]] },
  // Rate at least the map's size: only the centre tap reads the map (trained as a 1x1 convolution).
  { name: '3x3 rate 7 on a 4x7 map (centre tap only)', x: [2, 4, 7, 2], k: [3, 3], rate: 7, pad: [[7, 7], [7, 7]] },
];

describe('lib/engine/conv: trainable atrous convolution', () => {
  onBackend('wasm');

  it("tfjs's own dilated-conv gradients still throw (the reason for the space-to-batch path)", () => {
    const x = randomTensor([1, 5, 5, 1], 1) as tf.Tensor4D;
    const f = randomTensor([3, 3, 1, 1], 2) as tf.Tensor4D;
    assert.throws(() => tf.grad((a: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, f, 1, 'same', 'NHWC', 2)))(x), /dilation/);
    assert.throws(() => tf.grad((a: tf.Tensor) => tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, f, 1, 'same', 'NHWC', 2)))(x), /dilation/);
    tf.dispose([x, f]);
  });

  for (const backend of ['wasm', 'cpu']) {
    describe(`forward: training path equals the native dilated convolution (${backend})`, () => {
      before(async () => { await tf.setBackend(backend); });
      for (const c of CASES) {
        it(c.name, () => {
          tf.tidy(() => {
            const x = randomTensor(c.x, 3) as tf.Tensor4D;
            const f = randomTensor([c.k[0], c.k[1], c.x[3], 4], 4) as tf.Tensor4D;
            const d = randomTensor([c.k[0], c.k[1], c.x[3], 2], 5) as tf.Tensor4D;
            const o: ConvOptions = { stride: 1, dilation: c.rate, pad: c.pad };
            const fast = conv2d(x, f, o);
            const train = conv2d(x, f, { ...o, training: true });
            const ho = c.x[1] + c.pad[0][0] + c.pad[0][1] - (c.k[0] - 1) * c.rate;
            const wo = c.x[2] + c.pad[1][0] + c.pad[1][1] - (c.k[1] - 1) * c.rate;
            assert.deepEqual(train.shape, [c.x[0], ho, wo, 4]);
            assert.ok(maxRelDiff(train, fast) < 1e-5, `conv2d differs by ${maxRelDiff(train, fast)}`);
            const dfast = depthwiseConv2d(x, d, o);
            const dtrain = depthwiseConv2d(x, d, { ...o, training: true });
            assert.ok(maxRelDiff(dtrain, dfast) < 1e-5, `depthwise differs by ${maxRelDiff(dtrain, dfast)}`);
          });
        });
      }
    });
  }

  describe('backward: training-path gradients match finite differences on wasm', () => {
    before(async () => { await tf.setBackend('wasm'); });
    for (const c of [CASES[1], CASES[3], CASES[5], CASES[7]]) {
      it(`conv2d and depthwiseConv2d, ${c.name}`, () => {
        // Tiny channel counts keep the finite differences cheap.
        const x = randomTensor([c.x[0], c.x[1], c.x[2], 2], 6);
        const f = randomTensor([c.k[0], c.k[1], 2, 2], 7);
        const d = randomTensor([c.k[0], c.k[1], 2, 1], 8);
        const o: ConvOptions = { stride: 1, dilation: c.rate, pad: c.pad, training: true };
        assertGradients((a, b) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, o), [x, f], { label: `conv2d ${c.name}` });
        assertGradients((a, b) => depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, o), [x, d], { label: `depthwise ${c.name}` });
        tf.dispose([x, f, d]);
      });
    }

    it('wasm gradients equal cpu gradients on a larger layer (batch 2, rate 2, asymmetric pad)', async () => {
      const o: ConvOptions = { stride: 1, dilation: 2, pad: [[2, 1], [1, 2]], training: true };
      const grads = async (backend: string): Promise<tf.Tensor[]> => {
        await tf.setBackend(backend);
        return tf.tidy(() => {
          const x = randomTensor([2, 13, 11, 8], 9);
          const f = randomTensor([3, 3, 8, 6], 10);
          const d = randomTensor([3, 3, 8, 1], 11);
          const dy = randomTensor([2, 12, 10, 6], 12);
          const dyd = randomTensor([2, 12, 10, 8], 13);
          const g = tf.grads((a, b) => tf.sum(tf.mul(conv2d(a as tf.Tensor4D, b as tf.Tensor4D, o), dy)))([x, f]);
          const gd = tf.grads((a, b) => tf.sum(tf.mul(depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, o), dyd)))([x, d]);
          // Plain arrays: the tensors stay on the backend that made them.
          return [...g, ...gd].map((t) => tf.tensor(t.dataSync(), t.shape));
        });
      };
      const w = await grads('wasm');
      const wData = w.map((t) => ({ shape: t.shape, data: Float32Array.from(t.dataSync()) }));
      tf.dispose(w);
      const c = await grads('cpu');
      c.forEach((t, i) => {
        const a = tf.tensor(wData[i].data, wData[i].shape);
        assert.ok(maxRelDiff(a, t) < 1e-5, `gradient ${i} differs by ${maxRelDiff(a, t)}`);
        a.dispose();
      });
      tf.dispose(c);
      await tf.setBackend('wasm');
    });
  });

  describe('options', () => {
    before(async () => { await tf.setBackend('wasm'); });

    it('keep stride > 1 with dilation 1 on the native path, trainable on wasm', () => {
      const x = randomTensor([1, 7, 7, 2], 1);
      const f = randomTensor([3, 3, 2, 2], 2);
      const o: ConvOptions = { stride: 2, dilation: 1, pad: [[1, 0], [0, 1]], training: true };
      const y = conv2d(x as tf.Tensor4D, f as tf.Tensor4D, o);
      assert.deepEqual(y.shape, [1, 3, 3, 2]);
      assertGradients((a, b) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, o), [x, f], { label: 'stride 2' });
      tf.dispose([x, f, y]);
    });

    it('treat a 1x1 kernel at any dilation as dilation 1 (trainable, same result)', () => {
      const x = randomTensor([2, 5, 5, 3], 1) as tf.Tensor4D;
      const f = randomTensor([1, 1, 3, 2], 2) as tf.Tensor4D;
      const y = conv2d(x, f, { stride: 1, dilation: 4, pad: [[0, 0], [0, 0]], training: true });
      const ref = tf.conv2d(x, f, 1, 'valid');
      assert.ok(maxRelDiff(y, ref) < 1e-6);
      tf.dispose([x, f, y, ref]);
    });

    it('refuse stride > 1 together with dilation > 1, and bad padding, with clear messages', () => {
      const x = tf.zeros([1, 9, 9, 2]) as tf.Tensor4D;
      const f = tf.zeros([3, 3, 2, 2]) as tf.Tensor4D;
      assert.throws(() => conv2d(x, f, { stride: 2, dilation: 2, pad: [[2, 2], [2, 2]] }), /stride 2 with dilation 2 is not supported/);
      assert.throws(() => depthwiseConv2d(x, tf.zeros([3, 3, 2, 1]) as tf.Tensor4D, { stride: 2, dilation: 2, pad: [[2, 2], [2, 2]], training: true }),
        /depthwiseConv2d: stride 2 with dilation 2/);
      assert.throws(() => conv2d(x, f, { stride: 1, dilation: 2, pad: [[-1, 0], [0, 0]] as Padding4 }), /pad must be/);
      assert.throws(() => conv2d(x, f, { stride: 0, dilation: 1, pad: [[0, 0], [0, 0]] }), /stride must be a positive integer/);
      assert.throws(() => conv2d(x, f, { stride: 1, dilation: 6, pad: [[0, 0], [0, 0]], training: true }), /does not fit/);
      tf.dispose([x, f]);
    });

    it('leave no tensors behind, forward and backward', () => {
      const x = randomTensor([2, 9, 9, 3], 1) as tf.Tensor4D;
      const f = randomTensor([3, 3, 3, 2], 2) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const o: ConvOptions = { stride: 1, dilation: 3, pad: [[3, 3], [3, 3]], training: true };
      tf.dispose(conv2d(x, f, o));
      const g = tf.grads((a, b) => tf.sum(conv2d(a as tf.Tensor4D, b as tf.Tensor4D, o)))([x, f]);
      tf.dispose(g);
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([x, f]);
    });
  });
});
