/**
 * Training batch normalisation's passes over the map as WebAssembly SIMD kernels in place on
 * tfjs-wasm's heap (wasm-heap), f32x4 across channels (channels a multiple of 4):
 *   moments   per channel sum (x - shift) and sum (x - shift)^2, one read of x
 *   dstats    per channel sum dy and sum dy * (x - shift), one read of dy and x
 *   affine    y = x * a + b
 *   affine2   dx = dy * a + x * b + c
 * The per-channel vectors live in one scratch block of 8C floats:
 *   [0, C) shift | [C, 2C) first sums | [2C, 3C) second sums | [3C, 5C) per-row partial sums |
 *   [5C, 8C) coefficients a, b, c.
 * Sums run in two levels (per row of the map, then the rows added), so float32 rounding grows with
 * the row length plus the row count rather than with the pixel count.
 * With these a BN layer is 2 kernel calls forward and 2 backward plus C-length arithmetic in
 * JavaScript, where the composed form ran ~12 tfjs kernels forward and ~15 backward (each a
 * dispatch, a tape entry and an allocation): ~60 BN layers in MobileNetV2.
 */
import { Bytes, Fn, forLoop, I32, V128, W } from '../runtime/wasm-emitter';
import { heapKernels } from './wasm-heap';

export interface BnKernels {
  moments(x: number, s: number, rows: number, rowLen: number, c: number): void;
  dstats(dy: number, x: number, s: number, rows: number, rowLen: number, c: number): void;
  affine(x: number, s: number, y: number, pixels: number, c: number): void;
  affine2(dy: number, x: number, s: number, dx: number, pixels: number, c: number): void;
}

/** moments (withDy false) or dstats (true). */
function reduceFn(withDy: boolean): Fn {
  const params = withDy ? 6 : 5;
  const [a, b] = [0, 1];
  const [s, rows, rowLen, C] = withDy ? [2, 3, 4, 5] : [1, 2, 3, 4];
  let next = params;
  const [CB, CV, r, q, cv, off, pa, pb, t] = Array.from({ length: 9 }, () => next++);
  const i32Count = next - params;
  const [v, d] = [next++, next++];
  const zero = (from: number, vectors: Bytes): Bytes => forLoop(t, W.i32(0), vectors, [
    ...W.get(s), ...W.i32(from), ...W.get(CB), ...W.mul, ...W.add, ...W.get(t), ...W.i32(16), ...W.mul, ...W.add, ...W.vzero, ...W.vstore(0),
  ]);
  // address s + k*CB + off
  const at = (k: number): Bytes => [...W.get(s), ...W.i32(k), ...W.get(CB), ...W.mul, ...W.add, ...W.get(off), ...W.add];
  const perVector: Bytes = [
    ...W.get(cv), ...W.i32(16), ...W.mul, ...W.set(off),
    // v = x - shift
    ...W.get(withDy ? pb : pa), ...W.get(off), ...W.add, ...W.vload(0), ...at(0), ...W.vload(0), ...W.vsub, ...W.set(v),
  ];
  if (withDy) {
    perVector.push(...W.get(pa), ...W.get(off), ...W.add, ...W.vload(0), ...W.set(d));
    perVector.push(...at(3), ...at(3), ...W.vload(0), ...W.get(d), ...W.vadd, ...W.vstore(0));
    perVector.push(...at(4), ...at(4), ...W.vload(0), ...W.get(d), ...W.get(v), ...W.vmul, ...W.vadd, ...W.vstore(0));
  } else {
    perVector.push(...at(3), ...at(3), ...W.vload(0), ...W.get(v), ...W.vadd, ...W.vstore(0));
    perVector.push(...at(4), ...at(4), ...W.vload(0), ...W.get(v), ...W.get(v), ...W.vmul, ...W.vadd, ...W.vstore(0));
  }
  const perPixel: Bytes = [
    ...forLoop(cv, W.i32(0), W.get(CV), perVector),
    ...W.get(pa), ...W.get(CB), ...W.add, ...W.set(pa),
  ];
  if (withDy) perPixel.push(...W.get(pb), ...W.get(CB), ...W.add, ...W.set(pb));
  const flush: Bytes = [
    ...W.get(cv), ...W.i32(16), ...W.mul, ...W.set(off),
    ...at(1), ...at(1), ...W.vload(0), ...at(3), ...W.vload(0), ...W.vadd, ...W.vstore(0),
    ...at(2), ...at(2), ...W.vload(0), ...at(4), ...W.vload(0), ...W.vadd, ...W.vstore(0),
  ];
  const code: Bytes = [
    ...W.get(C), ...W.i32(4), ...W.mul, ...W.set(CB),
    ...W.get(C), ...W.i32(2), ...W.shrU, ...W.set(CV),
    ...W.get(a), ...W.set(pa),
  ];
  if (withDy) code.push(...W.get(b), ...W.set(pb));
  code.push(
    ...zero(1, [...W.get(CV), ...W.i32(2), ...W.mul]),
    ...forLoop(r, W.i32(0), W.get(rows), [
      ...zero(3, [...W.get(CV), ...W.i32(2), ...W.mul]),
      ...forLoop(q, W.i32(0), W.get(rowLen), perPixel),
      ...forLoop(cv, W.i32(0), W.get(CV), flush),
    ]),
  );
  return {
    name: withDy ? 'dstats' : 'moments',
    params: Array(params).fill(I32),
    locals: [[i32Count, I32], [2, V128]],
    code,
  };
}

/** affine (y = x*a + b) or affine2 (dx = dy*a + x*b + c). */
function affineFn(two: boolean): Fn {
  const params = two ? 6 : 5;
  const [a, b] = [0, 1];
  const [s, out, P, C] = two ? [2, 3, 4, 5] : [1, 2, 3, 4];
  let next = params;
  const [CB, CV, p, cv, off, pa, pb, po] = Array.from({ length: 8 }, () => next++);
  const i32Count = next - params;
  const coef = (k: number): Bytes => [...W.get(s), ...W.i32(k), ...W.get(CB), ...W.mul, ...W.add, ...W.get(off), ...W.add, ...W.vload(0)];
  const perVector: Bytes = [
    ...W.get(cv), ...W.i32(16), ...W.mul, ...W.set(off),
    ...W.get(po), ...W.get(off), ...W.add,
    ...W.get(pa), ...W.get(off), ...W.add, ...W.vload(0), ...coef(5), ...W.vmul,
  ];
  if (two) perVector.push(...W.get(pb), ...W.get(off), ...W.add, ...W.vload(0), ...coef(6), ...W.vmul, ...W.vadd, ...coef(7), ...W.vadd);
  else perVector.push(...coef(6), ...W.vadd);
  perVector.push(...W.vstore(0));
  const perPixel: Bytes = [
    ...forLoop(cv, W.i32(0), W.get(CV), perVector),
    ...W.get(pa), ...W.get(CB), ...W.add, ...W.set(pa),
    ...W.get(po), ...W.get(CB), ...W.add, ...W.set(po),
  ];
  if (two) perPixel.push(...W.get(pb), ...W.get(CB), ...W.add, ...W.set(pb));
  const code: Bytes = [
    ...W.get(C), ...W.i32(4), ...W.mul, ...W.set(CB),
    ...W.get(C), ...W.i32(2), ...W.shrU, ...W.set(CV),
    ...W.get(a), ...W.set(pa), ...W.get(out), ...W.set(po),
  ];
  if (two) code.push(...W.get(b), ...W.set(pb));
  code.push(...forLoop(p, W.i32(0), W.get(P), perPixel));
  return { name: two ? 'affine2' : 'affine', params: Array(params).fill(I32), locals: [[i32Count, I32]], code };
}

/** The four kernels on the active tfjs-wasm heap, or undefined (no SIMD, not wasm). */
export function bnKernels(): BnKernels | undefined {
  return heapKernels<BnKernels>('batch-norm', () => [reduceFn(false), reduceFn(true), affineFn(false), affineFn(true)]);
}
