/**
 * The fused softmax cross entropy (lib/training/loss fusedCrossEntropy): loss and gradient
 * against the composed tfjs formulation (crossEntropy, the one it replaces on wasm and cpu) with
 * void pixels, class weights, labels past the classes and an all-void batch; against finite
 * differences; and no tensors left behind. On wasm both the SIMD kernels and the JavaScript fallback.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/tf-setup';
import { assertGradients, randomTensor } from '../../lib/engine/gradcheck';
import { heapKernelOptions } from '../../lib/engine/wasm-heap';
import { crossEntropy, fusedCrossEntropy, IGNORE } from '../../lib/training/loss';

function labelsOf(n: number, classes: number, seed: number, voidEvery: number): Int32Array {
  let s = seed;
  return Int32Array.from({ length: n }, (_, i) => {
    s = (s * 1103515245 + 12345) >>> 0;
    return voidEvery > 0 && i % voidEvery === 0 ? IGNORE : (s >>> 8) % classes;
  });
}

/** Loss and d loss / d logits (times 3, so the incoming gradient is not 1) of one formulation. */
function lossAndGrad(fused: boolean, logits: tf.Tensor4D, labels: Int32Array, weights?: number[]): [number, Float32Array] {
  return tf.tidy(() => {
    const [n, h, w] = logits.shape;
    const f = (z: tf.Tensor) => tf.mul(fused
      ? fusedCrossEntropy(z as tf.Tensor4D, labels, IGNORE, weights)
      : crossEntropy(z as tf.Tensor4D, tf.tensor3d(labels, [n, h, w], 'int32'), IGNORE, weights), 3);
    const { value, grads } = tf.valueAndGrads(f)([logits]);
    return [value.dataSync()[0], Float32Array.from(grads[0].dataSync())];
  });
}

for (const [backend, simd] of [['wasm', true], ['wasm', false], ['cpu', false]] as const) {
  describe(`fused softmax cross entropy (${backend}${backend === 'wasm' ? (simd ? ', SIMD kernels' : ', JavaScript fallback') : ''})`, function () {
    onBackend(backend);
    const saved = heapKernelOptions.enabled;
    before(() => { heapKernelOptions.enabled = simd; });
    after(() => { heapKernelOptions.enabled = saved; });

    const cases: Array<[string, number[], number, number[] | undefined]> = [
      ['plain', [2, 5, 7, 4], 0, undefined],
      ['void pixels', [3, 4, 6, 21], 5, undefined],
      ['class weights', [2, 6, 5, 3], 4, [0.5, 2, 1.25]],
      ['a zero class weight', [1, 8, 8, 3], 7, [1, 0, 3]],
      ['two classes', [2, 3, 5, 2], 3, undefined],
      ['eight classes', [1, 7, 3, 8], 0, undefined],
    ];
    for (const [name, shape, voidEvery, weights] of cases) {
      it(`gives the composed loss and gradient: ${name}`, () => {
        const before = tf.memory().numTensors;
        // Large logits: the max is subtracted before the exponential.
        const logits = tf.tidy(() => tf.mul(randomTensor(shape, 3), 30)) as tf.Tensor4D;
        const labels = labelsOf(logits.size / shape[3], shape[3], 9, voidEvery);
        const [lw, gw] = lossAndGrad(false, logits, labels, weights);
        const [lg, gg] = lossAndGrad(true, logits, labels, weights);
        logits.dispose();
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
        assert.ok(Math.abs(lg - lw) <= 1e-5 * Math.abs(lw), `loss ${lg} vs ${lw}`);
        let worst = 0;
        let scale = 1e-6;
        gg.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - gw[i])); scale = Math.max(scale, Math.abs(gw[i])); });
        assert.ok(worst / scale < 1e-5, `gradient differs by ${worst / scale} (relative)`);
      });
    }

    it('counts a label past the classes with no loss and no gradient, as the composed form', () => {
      const logits = randomTensor([1, 2, 2, 3], 4) as tf.Tensor4D;
      const labels = Int32Array.from([0, 7, IGNORE, 2]);
      const [lw, gw] = lossAndGrad(false, logits, labels);
      const [lg, gg] = lossAndGrad(true, logits, labels);
      logits.dispose();
      assert.ok(Math.abs(lg - lw) < 1e-6, `loss ${lg} vs ${lw}`);
      gg.forEach((v, i) => assert.ok(Math.abs(v - gw[i]) < 1e-6, `gradient ${i}: ${v} vs ${gw[i]}`));
      assert.deepEqual(Array.from(gg.slice(3, 9)), [0, 0, 0, 0, 0, 0]);
    });

    it('is zero, not NaN, on an all-void batch', () => {
      const logits = randomTensor([1, 3, 3, 2], 5) as tf.Tensor4D;
      const [l, g] = lossAndGrad(true, logits, new Int32Array(9).fill(IGNORE));
      logits.dispose();
      assert.equal(l, 0);
      assert.ok(g.every((v) => v === 0));
    });

    it('agrees with finite differences', () => {
      const z = randomTensor([2, 3, 3, 5], 6, -2, 2);
      const labels = labelsOf(18, 5, 2, 4);
      try {
        assertGradients((x) => fusedCrossEntropy(x as tf.Tensor4D, labels, IGNORE, [1, 2, 0.5, 1, 3]), [z],
          { label: 'fusedCrossEntropy', tolerance: 2e-3, epsilon: 1e-2 });
      } finally {
        z.dispose();
      }
    });
  });
}
