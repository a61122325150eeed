import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/tf-setup';
import { assertGradients, gradCheck, randomTensor } from '../../lib/engine/gradcheck';
import { seededRandom } from '../../lib/runtime/random';

describe('lib/engine/gradcheck: finite-difference gradient checker', () => {
  onBackend('wasm');

  it('agrees with a hand-derived gradient: L = w * sum(x^2) gives 2 w x', () => {
    const x = tf.tensor1d([0.5, -1.25, 2, 3.5]);
    const r = gradCheck((a) => tf.sum(tf.square(a)), [x]);
    const xs = [0.5, -1.25, 2, 3.5];
    // The same scalar weight w scales every entry: analytic_i / (2 x_i) is one constant.
    const w = r.inputs[0].analytic[0] / (2 * xs[0]);
    r.inputs[0].analytic.forEach((g, i) => assert.ok(Math.abs(g - 2 * w * xs[i]) < 1e-5));
    r.inputs[0].numeric.forEach((g, i) => assert.ok(Math.abs(g - 2 * w * xs[i]) < 1e-3 * Math.abs(2 * w * xs[i]) + 1e-5, `${g}`));
    assert.ok(r.relError < 1e-4, `${r.relError}`);
    assert.equal(r.inputs[0].checked, 4);
    x.dispose();
  });

  it('passes correct gradients of several inputs, with non-differentiated arguments in the closure', () => {
    const a = randomTensor([3, 4], 1);
    const b = randomTensor([4, 2], 2);
    const mask = tf.tensor2d([[1, 0], [1, 1], [0, 1]]);
    const r = assertGradients((p, q) => tf.mul(tf.tanh(tf.matMul(p, q)), mask), [a, b]);
    assert.equal(r.inputs.length, 2);
    assert.ok(r.relError < 1e-3);
    tf.dispose([a, b, mask]);
  });

  it('catches a gradient that is 5% off', () => {
    const wrong = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([x]);
      return { value: tf.square(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(tf.mul(dy, saved[0]), 2.1) };
    });
    const x = randomTensor([2, 3], 3);
    const r = gradCheck((a) => wrong(a) as tf.Tensor, [x]);
    assert.ok(Math.abs(r.relError - 0.05 / 1.05) < 1e-3, `${r.relError}`);
    assert.throws(() => assertGradients((a) => wrong(a) as tf.Tensor, [x], { label: 'square' }),
      /square: input 0 relative error 4\.76e-2 .*worst entry \d+: analytic/);
    x.dispose();
  });

  it('catches a single wrong entry among many (entry error)', () => {
    const n = 200;
    const bump = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
      value: tf.mul(args[0] as tf.Tensor, 1),
      // Correct except entry 17, whose gradient is zeroed.
      gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.tensor1d(Array.from({ length: n }, (_, i) => (i === 17 ? 0 : 1)))),
    }));
    const x = randomTensor([n], 4);
    const r = gradCheck((a) => bump(a) as tf.Tensor, [x]);
    assert.ok(r.maxEntryError > 0.1, `${r.maxEntryError}`);
    assert.throws(() => assertGradients((a) => bump(a) as tf.Tensor, [x]), /worst entry 17/);
    x.dispose();
  });

  it('samples entries deterministically with maxEntries and seed', () => {
    const x = randomTensor([50], 5);
    const f = (a: tf.Tensor) => tf.sin(a);
    const r1 = gradCheck(f, [x], { maxEntries: 7, seed: 9 });
    const r2 = gradCheck(f, [x], { maxEntries: 7, seed: 9 });
    const idx = r1.inputs[0].indices;
    assert.equal(idx.length, 7);
    assert.deepEqual(idx, r2.inputs[0].indices);
    assert.deepEqual(idx, [...new Set(idx)].sort((p, q) => p - q));
    assert.ok(idx.every((i) => i >= 0 && i < 50));
    assert.ok(r1.relError < 1e-3);
    x.dispose();
  });

  it('leaves no tensors behind and does not dispose its inputs', () => {
    const x = randomTensor([1, 5, 5, 2], 6);
    const f = randomTensor([3, 3, 2, 2], 7);
    const before = tf.memory().numTensors;
    gradCheck((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), [x, f], { maxEntries: 10 });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(x.isDisposed, false);
    tf.dispose([x, f]);
  });

  it('randomTensor / seededRandom are reproducible and in range', () => {
    const a = randomTensor([100], 42, -2, 3);
    const b = randomTensor([100], 42, -2, 3);
    assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
    assert.ok(Array.from(a.dataSync()).every((v) => v >= -2 && v < 3));
    const r = seededRandom(1);
    const vals = Array.from({ length: 1000 }, r);
    const mean = vals.reduce((s, v) => s + v, 0) / vals.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05);
    tf.dispose([a, b]);
  });
});
