/**
 * Optimiser updates as one WebAssembly SIMD pass per parameter, in place on tfjs-wasm's heap
 * (wasm-heap): the composed forms ran 5-9 tfjs kernels per parameter (~160 parameters in v3+
 * MobileNetV2, ~1000 kernels a step). New values go to new tensors (variables then take them by
 * assign), never over a buffer another tensor may share. Elements past the last whole f32x4 are
 * updated by the same formulas in JavaScript on the heap.
 *   sgd   d = g + wd*w; buf' = momentum*buf + d; w' = w - lr*buf'
 *   adam  m' = b1*m + (1-b1)*g; v' = b2*v + (1-b2)*g^2; w' = w - (m'*a) / (sqrt(v'*b) + eps) - lrwd*w
 *         (a = lr/c1, b = 1/c2, lrwd = lr * weight decay)
 */
import * as tf from '@tensorflow/tfjs';
import { Bytes, F32, Fn, forLoop, I32, W } from '../runtime/wasm-emitter';
import { heapF32, heapKernels, heapOffset, heapTensor } from './wasm-heap';

interface OptKernels {
  sgd(w: number, g: number, buf: number, wOut: number, bufOut: number, vectors: number, wd: number, momentum: number, lr: number): void;
  adam(w: number, g: number, m: number, v: number, wOut: number, mOut: number, vOut: number, vectors: number,
    b1: number, b2: number, a: number, b: number, eps: number, lrwd: number): void;
}

function sgdFn(): Fn {
  const [w, g, buf, wOut, bufOut, n, wd, mom, lr] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [i, off] = [9, 10];
  const at = (base: number): Bytes => [...W.get(base), ...W.get(off), ...W.add];
  const splat = (p: number): Bytes => [...W.get(p), ...W.fsplat];
  return {
    name: 'sgd',
    params: [I32, I32, I32, I32, I32, I32, F32, F32, F32],
    locals: [[2, I32]],
    code: forLoop(i, W.i32(0), W.get(n), [
      ...W.get(i), ...W.i32(16), ...W.mul, ...W.set(off),
      // buf' = mom*buf + g + wd*w
      ...at(bufOut),
      ...at(buf), ...W.vload(0), ...splat(mom), ...W.vmul,
      ...at(g), ...W.vload(0), ...W.vadd,
      ...at(w), ...W.vload(0), ...splat(wd), ...W.vmul, ...W.vadd,
      ...W.vstore(0),
      // w' = w - lr*buf'
      ...at(wOut), ...at(w), ...W.vload(0), ...at(bufOut), ...W.vload(0), ...splat(lr), ...W.vmul, ...W.vsub, ...W.vstore(0),
    ]),
  };
}

function adamFn(): Fn {
  const [w, g, m, v, wOut, mOut, vOut, n, b1, b2, a, b, eps, lrwd] = Array.from({ length: 14 }, (_, k) => k);
  const [i, off] = [14, 15];
  const at = (base: number): Bytes => [...W.get(base), ...W.get(off), ...W.add];
  const splat = (p: number): Bytes => [...W.get(p), ...W.fsplat];
  const one = (p: number): Bytes => [...W.f32(1), ...W.get(p), ...[0x93], ...W.fsplat];
  return {
    name: 'adam',
    params: [I32, I32, I32, I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32],
    locals: [[2, I32]],
    code: forLoop(i, W.i32(0), W.get(n), [
      ...W.get(i), ...W.i32(16), ...W.mul, ...W.set(off),
      ...at(mOut), ...at(m), ...W.vload(0), ...splat(b1), ...W.vmul, ...at(g), ...W.vload(0), ...one(b1), ...W.vmul, ...W.vadd, ...W.vstore(0),
      ...at(vOut), ...at(v), ...W.vload(0), ...splat(b2), ...W.vmul,
      ...at(g), ...W.vload(0), ...at(g), ...W.vload(0), ...W.vmul, ...one(b2), ...W.vmul, ...W.vadd, ...W.vstore(0),
      // w' = w - m'*a / (sqrt(v'*b) + eps) - lrwd*w
      ...at(wOut),
      ...at(w), ...W.vload(0),
      ...at(mOut), ...W.vload(0), ...splat(a), ...W.vmul,
      ...at(vOut), ...W.vload(0), ...splat(b), ...W.vmul, ...W.vsqrt, ...splat(eps), ...W.vadd, ...W.vdiv,
      ...W.vsub,
      ...at(w), ...W.vload(0), ...splat(lrwd), ...W.vmul, ...W.vsub,
      ...W.vstore(0),
    ]),
  };
}

function kernels(): OptKernels | undefined {
  return heapKernels<OptKernels>('optimizer', () => [sgdFn(), adamFn()]);
}

/** [w', buf'] of an SGD-with-momentum step on tfjs-wasm, or undefined (not wasm / no SIMD). */
export function sgdStepSimd(w: tf.Tensor, g: tf.Tensor, buf: tf.Tensor, lr: number, momentum: number, wd: number): [tf.Tensor, tf.Tensor] | undefined {
  const k = kernels();
  if (!k) return undefined;
  const n = w.size;
  const wOut = heapTensor(w.shape);
  const bufOut = heapTensor(w.shape);
  const vectors = n >> 2;
  k.sgd(heapOffset(w), heapOffset(g), heapOffset(buf), heapOffset(wOut), heapOffset(bufOut), vectors, wd, momentum, lr);
  if (n % 4 !== 0) {
    const [wv, gv, bv, wo, bo] = [w, g, buf, wOut, bufOut].map((t) => heapF32(heapOffset(t), n));
    for (let e = vectors * 4; e < n; e++) {
      bo[e] = momentum * bv[e] + gv[e] + wd * wv[e];
      wo[e] = wv[e] - lr * bo[e];
    }
  }
  return [wOut, bufOut];
}

/** [w', m', v'] of an AdamW step on tfjs-wasm (see the module comment), or undefined. */
export function adamStepSimd(w: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor,
  o: { beta1: number; beta2: number; a: number; b: number; epsilon: number; lrwd: number }): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  const k = kernels();
  if (!k) return undefined;
  const n = w.size;
  const outs = [heapTensor(w.shape), heapTensor(w.shape), heapTensor(w.shape)] as [tf.Tensor, tf.Tensor, tf.Tensor];
  const vectors = n >> 2;
  k.adam(heapOffset(w), heapOffset(g), heapOffset(m), heapOffset(v), heapOffset(outs[0]), heapOffset(outs[1]), heapOffset(outs[2]),
    vectors, o.beta1, o.beta2, o.a, o.b, o.epsilon, o.lrwd);
  if (n % 4 !== 0) {
    const [wv, gv, mv, vv, wo, mo, vo] = [w, g, m, v, ...outs].map((t) => heapF32(heapOffset(t), n));
    // float32 rounding at each step, as the SIMD lanes.
    const f = Math.fround;
    for (let e = vectors * 4; e < n; e++) {
      mo[e] = f(mv[e] * o.beta1) + f(gv[e] * f(1 - o.beta1));
      vo[e] = f(vv[e] * o.beta2) + f(f(gv[e] * gv[e]) * f(1 - o.beta2));
      wo[e] = wv[e] - f(mo[e] * o.a) / (Math.sqrt(vo[e] * o.b) + o.epsilon) - wv[e] * o.lrwd;
    }
  }
  return outs;
}
