/**
 * The optimisers' SIMD updates on wasm (lib/engine/optimizer-wasm) against their composed tfjs
 * forms (the fallback, heapKernelOptions.enabled = false): SGD with momentum and weight decay,
 * AdamW, over several steps, on parameters with whole f32x4 vectors and a tail; no tensor leaks.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/tf-setup';
import { randomTensor } from '../../lib/engine/gradcheck';
import { sgdStepSimd } from '../../lib/engine/optimizer-wasm';
import { heapKernelOptions } from '../../lib/engine/wasm-heap';
import { Adam, Optimizer, OptimParam, SgdMomentum } from '../../lib/training/optimizer';

const SHAPES = [[37], [3, 3, 4, 8], [2]];

/** Parameters after three steps of an optimiser, and its exported state. */
async function run(simd: boolean, make: (p: OptimParam[]) => Optimizer): Promise<{ params: Float32Array[]; state: Float32Array }> {
  const saved = heapKernelOptions.enabled;
  heapKernelOptions.enabled = simd;
  const params = SHAPES.map((s, i): OptimParam => ({ name: `p${i}`, variable: tf.variable(randomTensor(s, 10 + i), true), lrMult: i + 1, decayMult: i === 2 ? 0 : 1 }));
  const opt = make(params);
  try {
    const before = tf.memory().numTensors;
    for (let step = 1; step <= 3; step++) {
      const grads = new Map(params.map((p, i) => [p.name, randomTensor(p.variable.shape, 100 * step + i, -2, 2)] as [string, tf.Tensor]));
      opt.apply(grads, 0.01 / step, step);
      tf.dispose([...grads.values()]);
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    return { params: params.map((p) => Float32Array.from(p.variable.dataSync())), state: (await opt.exportState()).data };
  } finally {
    heapKernelOptions.enabled = saved;
    opt.dispose();
    for (const p of params) p.variable.dispose();
  }
}

function assertClose(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

describe('lib/engine/optimizer-wasm: one SIMD pass per parameter', function () {
  onBackend('wasm');

  const optimisers: Array<[string, (p: OptimParam[]) => Optimizer]> = [
    ['SGD, momentum 0.9, weight decay 0.1', (p) => new SgdMomentum(p, 0.9, 0.1)],
    ['SGD without momentum', (p) => new SgdMomentum(p, 0, 0)],
    ['AdamW, weight decay 0.05', (p) => new Adam(p, 0.05)],
  ];
  it('runs on the heap here (else the comparison below would compare the fallback with itself)', () => {
    tf.tidy(() => assert.ok(sgdStepSimd(tf.ones([4]), tf.ones([4]), tf.zeros([4]), 0.1, 0.9, 0)));
  });
  for (const [name, make] of optimisers) {
    it(`${name}: the composed update's parameters and state`, async () => {
      const want = await run(false, make);
      const got = await run(true, make);
      got.params.forEach((p, i) => assertClose(p, want.params[i], 1e-6, `parameter ${i}`));
      assertClose(got.state, want.state, 1e-6, 'state');
    });
  }
});
