/**
 * The filter gradient of a 1x1 stride-1 convolution, dW[ci, co] = sum over pixels p of
 * x[p, ci] * dy[p, co], as one WebAssembly SIMD kernel in place on tfjs-wasm's heap (wasm-heap):
 * both operands read in their NHWC layout, no transposes. The composed form (a transpose of x
 * then a MatMul, which repacks dy as a weight matrix on every call) ran at ~1-2 GFLOP/s on the
 * thin matrices of MobileNetV2 (K = N*H*W pixels, M, N = channels); ~7 % of a training step.
 *
 * Tiles of 4 input channels x 8 output channels (8 f32x4 accumulators, within x64's 16 vector
 * registers) over chunks of pixels that stay in cache; a 4-channel tail tile when co % 8 == 4.
 * Channels must be multiples of 4 (else the caller falls back).
 */
import * as tf from '@tensorflow/tfjs';
import { Bytes, Fn, forLoop, I32, V128, W } from '../runtime/wasm-emitter';
import { heapKernels, heapOffset, heapTensor } from './wasm-heap';

interface PwKernels {
  pointwiseFilterGrad(x: number, dy: number, out: number, pixels: number, ci: number, co: number, chunk: number): void;
}

/** Bytes of x and dy rows per chunk of pixels (tests make it small to cross chunk boundaries). */
export const pointwiseOptions = { chunkBytes: 128 * 1024 };

const ROWS = 4;

function pointwiseFilterGradFn(): Fn {
  const [x, dy, out, P, CI, CO, chunk] = [0, 1, 2, 3, 4, 5, 6];
  let next = 7;
  const [p0, p1, r0, blk, p, xr, dr, t, CI4, CO4, nb, col] = Array.from({ length: 12 }, () => next++);
  const orow = Array.from({ length: ROWS }, () => next++);
  const i32Count = next - 7;
  const acc = Array.from({ length: ROWS * 2 }, () => next++);
  const b = [next++, next++];

  /** One tile of ROWS x nv vectors at byte column `col`, over pixels [p0, p1). */
  const tile = (nv: number): Bytes => {
    const code: Bytes = [];
    for (let r = 0; r < ROWS; r++) {
      // orow[r] = out + ((r0 + r) * CO) * 4 + col
      code.push(...W.get(out), ...W.get(r0), ...W.i32(r), ...W.add, ...W.get(CO4), ...W.mul, ...W.add, ...W.get(col), ...W.add, ...W.set(orow[r]));
      for (let v = 0; v < nv; v++) code.push(...W.get(orow[r]), ...W.vload(16 * v), ...W.set(acc[r * 2 + v]));
    }
    // running pointers: xr = x + (p0*CI + r0)*4, dr = dy + p0*CO4 + col
    code.push(
      ...W.get(x), ...W.get(p0), ...W.get(CI4), ...W.mul, ...W.add, ...W.get(r0), ...W.i32(4), ...W.mul, ...W.add, ...W.set(xr),
      ...W.get(dy), ...W.get(p0), ...W.get(CO4), ...W.mul, ...W.add, ...W.get(col), ...W.add, ...W.set(dr),
    );
    const body: Bytes = [];
    for (let v = 0; v < nv; v++) body.push(...W.get(dr), ...W.vload(16 * v), ...W.set(b[v]));
    for (let r = 0; r < ROWS; r++) {
      for (let v = 0; v < nv; v++) {
        const a = acc[r * 2 + v];
        body.push(...W.get(a), ...W.get(xr), ...W.vload32Splat(4 * r), ...W.get(b[v]), ...W.vmul, ...W.vadd, ...W.set(a));
      }
    }
    body.push(
      ...W.get(xr), ...W.get(CI4), ...W.add, ...W.set(xr),
      ...W.get(dr), ...W.get(CO4), ...W.add, ...W.set(dr),
    );
    code.push(...forLoop(p, W.get(p0), W.get(p1), body));
    for (let r = 0; r < ROWS; r++) {
      for (let v = 0; v < nv; v++) code.push(...W.get(orow[r]), ...W.get(acc[r * 2 + v]), ...W.vstore(16 * v));
    }
    return code;
  };

  const perRows: Bytes = [
    ...forLoop(blk, W.i32(0), W.get(nb), [...W.get(blk), ...W.i32(32), ...W.mul, ...W.set(col), ...tile(2)]),
    // a last single vector when co % 8 == 4
    ...W.get(CO), ...W.i32(4), ...W.and, ...W.if, ...W.get(nb), ...W.i32(32), ...W.mul, ...W.set(col), ...tile(1), ...W.end,
  ];
  const perChunk: Bytes = [
    ...W.get(p0), ...W.get(chunk), ...W.add, ...W.tee(p1), ...W.get(P), ...W.get(p1), ...W.get(P), ...W.ltS, ...W.select, ...W.set(p1),
    ...forLoop(r0, W.i32(0), W.get(CI), [
      ...perRows,
      // step r0 by ROWS (forLoop adds 1)
      ...W.get(r0), ...W.i32(ROWS - 1), ...W.add, ...W.set(r0),
    ]),
  ];
  const code: Bytes = [
    ...W.get(CI), ...W.i32(4), ...W.mul, ...W.set(CI4),
    ...W.get(CO), ...W.i32(4), ...W.mul, ...W.set(CO4),
    ...W.get(CO), ...W.i32(3), ...W.shrU, ...W.set(nb),
    // out = 0
    ...forLoop(t, W.i32(0), [...W.get(CI), ...W.get(CO), ...W.mul, ...W.i32(2), ...W.shrU], [
      ...W.get(out), ...W.get(t), ...W.i32(16), ...W.mul, ...W.add, ...W.vzero, ...W.vstore(0),
    ]),
    ...forLoop(p0, W.i32(0), W.get(P), [
      ...perChunk,
      ...W.get(p1), ...W.i32(1), ...W.sub, ...W.set(p0),
    ]),
  ];
  return { name: 'pointwiseFilterGrad', params: Array(7).fill(I32), locals: [[i32Count, I32], [ROWS * 2 + 2, V128]], code };
}

/**
 * dW [1, 1, ci, co] of a 1x1 stride-1 unpadded convolution from x [n, h, w, ci] and dy [n, h, w, co]
 * on tfjs-wasm, or undefined where the kernel does not apply.
 */
export function pointwiseFilterGradSimd(x: tf.Tensor4D, dy: tf.Tensor4D): tf.Tensor4D | undefined {
  const [n, h, w, ci] = x.shape;
  const co = dy.shape[3];
  if (ci % 4 !== 0 || co % 4 !== 0 || dy.shape[1] !== h || dy.shape[2] !== w || dy.shape[0] !== n) return undefined;
  const k = heapKernels<PwKernels>('pointwise-filter-grad', () => [pointwiseFilterGradFn()]);
  if (!k) return undefined;
  const out = heapTensor<tf.Rank.R4>([1, 1, ci, co]);
  // Pixels per chunk: its rows of x and dy within chunkBytes.
  const chunk = Math.max(1, Math.floor(pointwiseOptions.chunkBytes / (4 * (ci + co))));
  k.pointwiseFilterGrad(heapOffset(x), heapOffset(dy), heapOffset(out), n * h * w, ci, co, chunk);
  return out;
}
