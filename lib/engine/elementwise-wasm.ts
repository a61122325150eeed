/**
 * Element-wise training kernels as WebAssembly SIMD in place on tfjs-wasm's heap (wasm-heap):
 *   relu6Grad   dx = dy where 0 < x < 6, else 0 (one pass; tfjs's composition ran 4 kernels)
 * Sizes must be multiples of 4 (else the caller falls back).
 */
import * as tf from '@tensorflow/tfjs';
import { Fn, forLoop, I32, W } from '../runtime/wasm-emitter';
import { heapKernels, heapOffset, heapTensor } from './wasm-heap';

interface ElementwiseKernels {
  relu6Grad(dy: number, x: number, dx: number, vectors: number): void;
}

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
      ...W.get(x), ...W.get(off), ...W.add, ...W.vload(0), ...W.f32(0), ...W.fsplat, ...W.vgt,
      ...W.get(x), ...W.get(off), ...W.add, ...W.vload(0), ...W.f32(6), ...W.fsplat, ...W.vlt,
      ...W.vand, ...W.vand, ...W.vstore(0),
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

interface CopyKernels {
  copyChannels(src: number, dst: number, pixels: number, srcC: number, dstC: number, n: number): void;
}

/**
 * copyChannels(src, dst, P, srcC, dstC, n): for each of P pixels, n floats from src (pixel stride
 * srcC floats) to dst (stride dstC): f32x4 moves (unaligned) and a scalar tail. The last-axis
 * Concat and SplitV of tfjs-wasm copy element by element in generic loops (~10 ms for a
 * [8, 33, 33, 304] split, measured).
 */
function copyChannelsFn(): Fn {
  const [src, dst, P, srcC, dstC, n] = [0, 1, 2, 3, 4, 5];
  const [p, i, ps, pd, nv] = [6, 7, 8, 9, 10];
  return {
    name: 'copyChannels',
    params: [I32, I32, I32, I32, I32, I32],
    locals: [[5, I32]],
    code: [
      ...W.get(n), ...W.i32(2), ...W.shrU, ...W.set(nv),
      ...W.get(src), ...W.set(ps), ...W.get(dst), ...W.set(pd),
      ...forLoop(p, W.i32(0), W.get(P), [
        ...forLoop(i, W.i32(0), W.get(nv), [
          ...W.get(pd), ...W.get(i), ...W.i32(16), ...W.mul, ...W.add,
          ...W.get(ps), ...W.get(i), ...W.i32(16), ...W.mul, ...W.add, ...W.vload(0), ...W.vstore(0),
        ]),
        ...forLoop(i, [...W.get(nv), ...W.i32(4), ...W.mul], W.get(n), [
          ...W.get(pd), ...W.get(i), ...W.i32(4), ...W.mul, ...W.add,
          ...W.get(ps), ...W.get(i), ...W.i32(4), ...W.mul, ...W.add, ...W.f32load(0), ...W.f32store(0),
        ]),
        ...W.get(ps), ...W.get(srcC), ...W.i32(4), ...W.mul, ...W.add, ...W.set(ps),
        ...W.get(pd), ...W.get(dstC), ...W.i32(4), ...W.mul, ...W.add, ...W.set(pd),
      ]),
    ],
  };
}

function copyKernels(): CopyKernels | undefined {
  return heapKernels<CopyKernels>('copy-channels', () => [copyChannelsFn()]);
}

const lastAxis = (axis: number | number[], rank: number): boolean => {
  const a = Array.isArray(axis) ? axis[0] : axis;
  return a === rank - 1 || a === -1;
};

/** Concatenation of float32 tensors along their last axis on tfjs-wasm, or undefined. */
export function concatLastAxisSimd(xs: tf.Tensor[], axis: number | number[]): tf.Tensor | undefined {
  if (xs.length === 0 || xs.some((t) => t.dtype !== 'float32' || t.rank < 1) || !lastAxis(axis, xs[0].rank)) return undefined;
  const k = copyKernels();
  if (!k) return undefined;
  const channels = xs.map((t) => t.shape[t.rank - 1]);
  const total = channels.reduce((a, b) => a + b, 0);
  const pixels = total === 0 ? 0 : xs[0].size / channels[0];
  if (xs.some((t, i) => t.size !== pixels * channels[i])) return undefined;
  const out = heapTensor([...xs[0].shape.slice(0, -1), total]);
  let start = 0;
  xs.forEach((t, i) => {
    if (channels[i] > 0 && pixels > 0) k.copyChannels(heapOffset(t), heapOffset(out) + 4 * start, pixels, channels[i], total, channels[i]);
    start += channels[i];
  });
  return out;
}

/** tf.split of a float32 tensor along its last axis on tfjs-wasm, or undefined. */
export function splitLastAxisSimd(x: tf.Tensor, sizes: number[], axis: number | number[]): tf.Tensor[] | undefined {
  if (x.dtype !== 'float32' || x.rank < 1 || !lastAxis(axis, x.rank)) return undefined;
  const c = x.shape[x.rank - 1];
  if (sizes.some((s) => s < 0) || sizes.reduce((a, b) => a + b, 0) !== c) return undefined;
  const k = copyKernels();
  if (!k) return undefined;
  const pixels = c === 0 ? 0 : x.size / c;
  let start = 0;
  return sizes.map((n) => {
    const out = heapTensor([...x.shape.slice(0, -1), n]);
    if (n > 0 && pixels > 0) k.copyChannels(heapOffset(x) + 4 * start, heapOffset(out), pixels, c, n, n);
    start += n;
    return out;
  });
}
