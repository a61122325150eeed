/**
 * Element-wise training kernels as WebAssembly SIMD in place on tfjs-wasm's heap (wasm-heap):
 *   relu6Grad   dx = dy where 0 < x < 6, else 0 (one pass; tfjs's composition ran 4 kernels)
 * Sizes must be multiples of 4 (else the caller falls back).
 */
import * as tf from '@tensorflow/tfjs';
import { Fn, forLoop, I32, simd, W } from '../runtime/wasm-emitter';
import { heapKernels, heapOffset, heapTensor } from './wasm-heap';

interface ElementwiseKernels {
  relu6Grad(dy: number, x: number, dx: number, vectors: number): void;
}

const vlt = simd(0x43);
const vgt = simd(0x44);
const vand = simd(0x4e);

function relu6GradFn(): Fn {
  const [dy, x, dx, n, i, off] = [0, 1, 2, 3, 4, 5];
  return {
    name: 'relu6Grad',
    params: [I32, I32, I32, I32],
    locals: [[2, I32]],
    code: forLoop(i, W.i32(0), W.get(n), [
      ...W.get(i), ...W.i32(16), ...W.mul, ...W.set(off),
      ...W.get(dx), ...W.get(off), ...W.add,
      ...W.get(dy), ...W.get(off), ...W.add, ...W.vload(0),
      ...W.get(x), ...W.get(off), ...W.add, ...W.vload(0), ...W.f32(0), ...W.fsplat, ...vgt,
      ...W.get(x), ...W.get(off), ...W.add, ...W.vload(0), ...W.f32(6), ...W.fsplat, ...vlt,
      ...vand, ...vand, ...W.vstore(0),
    ]),
  };
}

function kernels(): ElementwiseKernels | undefined {
  return heapKernels<ElementwiseKernels>('elementwise', () => [relu6GradFn()]);
}

/** dy where 0 < x < 6, else 0, on tfjs-wasm; undefined where the kernel does not apply. */
export function relu6GradSimd(dy: tf.Tensor, x: tf.Tensor): tf.Tensor | undefined {
  if (dy.size % 4 !== 0 || dy.size !== x.size || dy.dtype !== 'float32' || x.dtype !== 'float32') return undefined;
  const k = kernels();
  if (!k) return undefined;
  const dx = heapTensor(x.shape);
  k.relu6Grad(heapOffset(dy), heapOffset(x), heapOffset(dx), dy.size / 4);
  return dx;
}
