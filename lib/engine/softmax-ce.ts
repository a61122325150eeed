/**
 * Softmax cross entropy over the last axis with its gradient, as one op: the composed tfjs form
 * runs ~20 kernels over the [N, h, w, C] map forward and as many backward (Exp twice,
 * broadcasting subtractions and multiplies, a one-hot, Cast): ~15 % of a v3+ MobileNetV2 x0.25
 * training step at crop 129 on wasm.
 *
 * On tfjs-wasm: two WebAssembly SIMD kernels (wasm-heap) working in place on the logits, one for
 * the forward (per pixel: max and sum of exp(z - max)), one for the backward (exp again, scaled,
 * minus the one-hot), f32x4 across the classes with an f32 exponential (simd-ops). Elsewhere on
 * the host (cpu, or wasm without SIMD): the same in JavaScript.
 *
 * Loss = sum_p w_p * (log sum_c exp z_pc - z_p,label) / max(sum_p w_p, 1), w_p the pixel's class
 * weight (1 without class weights), 0 for ignored pixels. A label outside [0, C) counts in the
 * denominator with no loss and no gradient (the composed form's all-zero one-hot).
 */
import * as tf from '@tensorflow/tfjs';
import { Bytes, F32, Fn, forLoop, I32, V128, W } from '../runtime/wasm-emitter';
import { EXP_CONST_COUNT, expConstants, sexp, vexp } from './simd-ops';
import { heapF32, heapKernels, heapOffset, heapTensor } from './wasm-heap';

interface CeKernels {
  stats(z: number, m: number, s: number, pixels: number): void;
  grad(z: number, m: number, s: number, w: number, k: number, g: number, pixels: number, scale: number): void;
}

/** The two kernels for C classes: nv whole f32x4 vectors and a scalar tail per pixel. */
function ceFns(C: number): Fn[] {
  return [statsFn(C), gradFn(C)];
}

/** stats(z, m, s, P): per pixel the max of the logits and the sum of exp(z - max). */
function statsFn(C: number): Fn {
  const nv = Math.floor(C / 4);
  const tail = C % 4;
  const rowBytes = C * 4;
  // params 0-3; locals: p, zb (i32); m, sum, ek, er (f32); vm, acc (v128); exp consts + k, r (v128)
  const [z, mOut, sOut, P] = [0, 1, 2, 3];
  const [p, zb] = [4, 5];
  const [m, sum, ek, er] = [6, 7, 8, 9];
  const [vm, acc] = [10, 11];
  const el = { consts: 12, k: 12 + EXP_CONST_COUNT, r: 13 + EXP_CONST_COUNT };
  const body: Bytes = [...W.get(z), ...W.get(p), ...W.i32(rowBytes), ...W.mul, ...W.add, ...W.set(zb)];
  if (nv > 0) {
    body.push(...W.get(zb), ...W.vload(0), ...W.set(vm));
    for (let v = 1; v < nv; v++) body.push(...W.get(vm), ...W.get(zb), ...W.vload(16 * v), ...W.vmax, ...W.set(vm));
    body.push(...W.get(vm), ...W.lane(0));
    for (let l = 1; l < 4; l++) body.push(...W.get(vm), ...W.lane(l), ...W.fmax);
    body.push(...W.set(m));
  } else {
    body.push(...W.get(zb), ...W.f32load(0), ...W.set(m));
  }
  for (let j = nv > 0 ? 0 : 1; j < tail; j++) body.push(...W.get(m), ...W.get(zb), ...W.f32load(16 * nv + 4 * j), ...W.fmax, ...W.set(m));
  body.push(...W.get(m), ...W.fsplat, ...W.set(vm), ...W.vzero, ...W.set(acc));
  for (let v = 0; v < nv; v++) {
    body.push(...W.get(acc), ...W.get(zb), ...W.vload(16 * v), ...W.get(vm), ...W.vsub, ...vexp(el), ...W.vadd, ...W.set(acc));
  }
  body.push(...W.get(acc), ...W.lane(0));
  for (let l = 1; l < 4; l++) body.push(...W.get(acc), ...W.lane(l), ...W.fadd);
  body.push(...W.set(sum));
  for (let j = 0; j < tail; j++) {
    body.push(...W.get(sum), ...W.get(zb), ...W.f32load(16 * nv + 4 * j), ...W.get(m), ...W.fsub, ...sexp({ k: ek, r: er }), ...W.fadd, ...W.set(sum));
  }
  body.push(
    ...W.get(mOut), ...W.get(p), ...W.i32(4), ...W.mul, ...W.add, ...W.get(m), ...W.f32store(0),
    ...W.get(sOut), ...W.get(p), ...W.i32(4), ...W.mul, ...W.add, ...W.get(sum), ...W.f32store(0),
  );
  return {
    name: 'stats',
    params: [I32, I32, I32, I32],
    locals: [[2, I32], [4, F32], [2 + EXP_CONST_COUNT + 2, V128]],
    code: [...expConstants(el.consts), ...forLoop(p, W.i32(0), W.get(P), body)],
  };
}

/** grad(z, m, s, w, k, g, P, scale): g = scale * w * (exp(z - m) / s - onehot(k)). */
function gradFn(C: number): Fn {
  const nv = Math.floor(C / 4);
  const tail = C % 4;
  const rowBytes = C * 4;
  const [z, mIn, sIn, wIn, kIn, g, P, scale] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [p, zb, gb, q] = [8, 9, 10, 11];
  const [m, f, wq, ek, er] = [12, 13, 14, 15, 16];
  const [vm, vf] = [17, 18];
  const el = { consts: 19, k: 19 + EXP_CONST_COUNT, r: 20 + EXP_CONST_COUNT };
  const body: Bytes = [
    ...W.get(p), ...W.i32(rowBytes), ...W.mul, ...W.set(q),
    ...W.get(z), ...W.get(q), ...W.add, ...W.set(zb),
    ...W.get(g), ...W.get(q), ...W.add, ...W.set(gb),
    ...W.get(p), ...W.i32(4), ...W.mul, ...W.set(q),
    ...W.get(mIn), ...W.get(q), ...W.add, ...W.f32load(0), ...W.set(m),
    ...W.get(wIn), ...W.get(q), ...W.add, ...W.f32load(0), ...W.get(scale), ...W.fmul, ...W.set(wq),
    ...W.get(wq), ...W.get(sIn), ...W.get(q), ...W.add, ...W.f32load(0), ...W.fdiv, ...W.set(f),
    ...W.get(m), ...W.fsplat, ...W.set(vm), ...W.get(f), ...W.fsplat, ...W.set(vf),
  ];
  for (let v = 0; v < nv; v++) {
    body.push(...W.get(gb), ...W.get(zb), ...W.vload(16 * v), ...W.get(vm), ...W.vsub, ...vexp(el), ...W.get(vf), ...W.vmul, ...W.vstore(16 * v));
  }
  for (let j = 0; j < tail; j++) {
    const off = 16 * nv + 4 * j;
    body.push(...W.get(gb), ...W.get(zb), ...W.f32load(off), ...W.get(m), ...W.fsub, ...sexp({ k: ek, r: er }), ...W.get(f), ...W.fmul, ...W.f32store(off));
  }
  // g[label] -= w * scale
  body.push(
    ...W.get(gb), ...W.get(kIn), ...W.get(q), ...W.add, ...W.i32load(0), ...W.i32(4), ...W.mul, ...W.add, ...W.set(q),
    ...W.get(q), ...W.get(q), ...W.f32load(0), ...W.get(wq), ...W.fsub, ...W.f32store(0),
  );
  return {
    name: 'grad',
    params: [I32, I32, I32, I32, I32, I32, I32, F32],
    locals: [[4, I32], [5, F32], [2 + EXP_CONST_COUNT + 2, V128]],
    code: [...expConstants(el.consts), ...forLoop(p, W.i32(0), W.get(P), body)],
  };
}

/** Per-pixel weight (0: no loss, no gradient), label clamped into [0, C), and the denominator. */
function pixelWeights(labels: ArrayLike<number>, C: number, ignore: number, classWeights?: ArrayLike<number>) {
  const n = labels.length;
  const w = new Float32Array(n);
  const k = new Int32Array(n);
  let total = 0;
  for (let p = 0; p < n; p++) {
    const label = labels[p];
    if (label === ignore) continue;
    if (!(label >= 0 && label < C)) {
      total += 1;
      continue;
    }
    const wp = classWeights ? classWeights[label] : 1;
    w[p] = wp;
    k[p] = label;
    total += wp;
  }
  return { w, k, norm: 1 / Math.max(total, 1) };
}

/** The JavaScript form (cpu, or wasm without SIMD): loss and the gradient for an incoming gradient of 1. */
function hostLossAndGrad(z: Float32Array, C: number, w: Float32Array, k: Int32Array, norm: number): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(z.length);
  let loss = 0;
  for (let p = 0, o = 0; p < w.length; p++, o += C) {
    const wp = w[p];
    if (wp === 0) continue;
    let max = z[o];
    for (let c = 1; c < C; c++) if (z[o + c] > max) max = z[o + c];
    let sum = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(z[o + c] - max);
      grad[o + c] = e;
      sum += e;
    }
    loss += wp * (Math.log(sum) + max - z[o + k[p]]);
    const f = (wp * norm) / sum;
    for (let c = 0; c < C; c++) grad[o + c] *= f;
    grad[o + k[p]] -= wp * norm;
  }
  return { loss: loss * norm, grad };
}

/**
 * Mean softmax cross entropy of logits [..., C] against one label per row (labels.length = rows),
 * `ignore` excluded, optional class weights; differentiable in the logits. Host backends only
 * (wasm, cpu): the logits are read on the host.
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: ArrayLike<number>, ignore: number, classWeights?: ArrayLike<number>): tf.Scalar {
  const C = logits.shape[logits.rank - 1];
  const rows = logits.size / C;
  if (labels.length !== rows) throw new Error(`cross entropy: ${labels.length} labels for ${rows} pixels`);
  const { w, k, norm } = pixelWeights(labels, C, ignore, classWeights);
  const kernels = heapKernels<CeKernels>(`softmax-ce-${C}`, () => ceFns(C));
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const z = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    if (!kernels) {
      const { loss, grad } = hostLossAndGrad(z.dataSync() as Float32Array, C, w, k, norm);
      return {
        value: tf.scalar(loss),
        gradFunc: (dy: tf.Tensor) => {
          const s = dy.dataSync()[0];
          if (s !== 1) for (let i = 0; i < grad.length; i++) grad[i] *= s;
          return [tf.tensor(grad, logits.shape, 'float32')];
        },
      };
    }
    const m = heapTensor([rows]);
    const s = heapTensor([rows]);
    const wt = tf.tensor1d(w, 'float32');
    const kt = tf.tensor1d(k, 'int32');
    kernels.stats(heapOffset(z), heapOffset(m), heapOffset(s), rows);
    const zv = heapF32(heapOffset(z), z.size);
    const mv = heapF32(heapOffset(m), rows);
    const sv = heapF32(heapOffset(s), rows);
    let loss = 0;
    for (let p = 0; p < rows; p++) if (w[p] !== 0) loss += w[p] * (Math.log(sv[p]) + mv[p] - zv[p * C + k[p]]);
    save([z, m, s, wt, kt]);
    return {
      value: tf.scalar(loss * norm),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [zs, ms, ss, ws, ks] = saved;
        const g = heapTensor(zs.shape);
        kernels.grad(heapOffset(zs), heapOffset(ms), heapOffset(ss), heapOffset(ws), heapOffset(ks), heapOffset(g), rows, norm * dy.dataSync()[0]);
        return [g];
      },
    };
  });
  return op(logits) as tf.Scalar;
}
