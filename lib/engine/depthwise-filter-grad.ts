/**
 * The filter gradient of a depthwise convolution (channel multiplier 1, NHWC) as one WebAssembly
 * SIMD kernel working in place on tfjs-wasm's heap (wasm-heap):
 *   dW[i, j, c] = sum over n, y, x of xpad[n, y*sh + i*dh, x*sw + j*dw, c] * dy[n, y, x, c].
 * f32x4 across channels; per output row and channel vector the kh*kw accumulators stay in
 * registers while the row's pixels stream by (one dy load feeds every tap), so the input rows a
 * tap reads stay in cache. Input rows outside the image read a row of zeros; columns outside it
 * are skipped in the edge columns only (the interior runs unchecked). Specialised per kernel
 * size at run time; the composed XNNPACK form (wasm-grad-kernels) stays the fallback (other
 * multipliers, channels not a multiple of 4, no SIMD).
 */
import * as tf from '@tensorflow/tfjs';
import { Bytes, Fn, forLoop, I32, V128, W } from '../runtime/wasm-emitter';
import { heapKernels, heapOffset, heapTensor } from './wasm-heap';

type DwArgs = [x: number, dy: number, out: number, spare: number, n: number, h: number, w: number, c: number,
  ho: number, wo: number, sh: number, sw: number, dh: number, dw: number, pt: number, pl: number, xa: number, xb: number];

interface DwKernels {
  dwFilterGrad(...args: DwArgs): void;
  dwInputGrad(...args: DwArgs): void;
}

/**
 * dwFilterGrad: out = dW [kh, kw, c] from x and dy; `spare` a row of zeros (w*c floats) read for
 * input rows outside the image.
 * dwInputGrad: out = dx [n, h, w, c] from the filter (in place of x) and dy, scattering
 * dy * f into dx; `spare` a scratch row (w*c floats) that absorbs the writes to rows outside.
 */
function dwFn(kh: number, kw: number, input: boolean): Fn {
  // params
  const [x, dy, out, zero, N, H, Wd, C, Ho, Wo, sh, sw, dh, dw, pt, pl, xa, xb] = Array.from({ length: 18 }, (_, i) => i);
  // The map the taps address: x (filter gradient) or dx (input gradient); the filter is in x then.
  const map = input ? out : x;
  // i32 locals
  let next = 18;
  const [n, y, cv, xx, cb, dq, ob, iy, CB, CV, t, tmp, ix, base] = Array.from({ length: 14 }, () => next++);
  const jo = Array.from({ length: kw }, () => next++);
  const row = Array.from({ length: kh }, () => next++);
  const rp = Array.from({ length: kh }, () => next++);
  const i32Count = next - 18;
  // v128 locals
  const acc = Array.from({ length: kh * kw }, () => next++);
  const d = next++;
  const taps = kh * kw;
  const v128Count = taps + 1;

  const code: Bytes = [
    ...W.get(C), ...W.i32(4), ...W.mul, ...W.set(CB),
    ...W.get(C), ...W.i32(2), ...W.shrU, ...W.set(CV),
    // out = 0
    ...forLoop(t, W.i32(0), input
      ? [...W.get(N), ...W.get(H), ...W.mul, ...W.get(Wd), ...W.mul, ...W.get(CV), ...W.mul]
      : [...W.get(CV), ...W.i32(taps), ...W.mul], [
      ...W.get(out), ...W.get(t), ...W.i32(16), ...W.mul, ...W.add, ...W.vzero, ...W.vstore(0),
    ]),
  ];
  for (let j = 0; j < kw; j++) code.push(...W.i32(j), ...W.get(dw), ...W.mul, ...W.get(CB), ...W.mul, ...W.set(jo[j]));

  // Unchecked body at column xx: every tap inside the row.
  const interior: Bytes = [
    ...W.get(dq), ...W.get(xx), ...W.get(CB), ...W.mul, ...W.add, ...W.vload(0), ...W.set(d),
    ...W.get(xx), ...W.get(sw), ...W.mul, ...W.get(pl), ...W.sub, ...W.get(CB), ...W.mul, ...W.set(cb),
  ];
  for (let i = 0; i < kh; i++) {
    interior.push(...W.get(rp[i]), ...W.get(cb), ...W.add, ...W.set(base));
    for (let j = 0; j < kw; j++) {
      const a = acc[i * kw + j];
      if (input) {
        // dx[tap] += dy * f
        interior.push(...W.get(base), ...W.get(jo[j]), ...W.add, ...W.set(ix),
          ...W.get(ix), ...W.get(ix), ...W.vload(0), ...W.get(d), ...W.get(a), ...W.vmul, ...W.vadd, ...W.vstore(0));
      } else {
        interior.push(...W.get(a), ...W.get(base), ...W.get(jo[j]), ...W.add, ...W.vload(0), ...W.get(d), ...W.vmul, ...W.vadd, ...W.set(a));
      }
    }
  }
  // Checked body: columns outside the image skipped.
  const edge: Bytes = [
    ...W.get(dq), ...W.get(xx), ...W.get(CB), ...W.mul, ...W.add, ...W.vload(0), ...W.set(d),
  ];
  for (let j = 0; j < kw; j++) {
    edge.push(
      ...W.get(xx), ...W.get(sw), ...W.mul, ...W.get(pl), ...W.sub, ...W.i32(j), ...W.get(dw), ...W.mul, ...W.add, ...W.set(ix),
      ...W.get(ix), ...W.get(Wd), ...W.ltU, ...W.if,
      ...W.get(ix), ...W.get(CB), ...W.mul, ...W.set(cb),
    );
    for (let i = 0; i < kh; i++) {
      const a = acc[i * kw + j];
      if (input) {
        edge.push(...W.get(rp[i]), ...W.get(cb), ...W.add, ...W.set(base),
          ...W.get(base), ...W.get(base), ...W.vload(0), ...W.get(d), ...W.get(a), ...W.vmul, ...W.vadd, ...W.vstore(0));
      } else {
        edge.push(...W.get(a), ...W.get(rp[i]), ...W.get(cb), ...W.add, ...W.vload(0), ...W.get(d), ...W.vmul, ...W.vadd, ...W.set(a));
      }
    }
    edge.push(...W.end);
  }

  const perVector: Bytes = [
    ...W.get(cv), ...W.i32(16), ...W.mul, ...W.set(tmp),
    ...W.get(dq), ...W.get(tmp), ...W.add, ...W.set(dq),
    ...W.get(input ? x : out), ...W.get(tmp), ...W.add, ...W.set(ob),
  ];
  for (let i = 0; i < kh; i++) perVector.push(...W.get(row[i]), ...W.get(tmp), ...W.add, ...W.set(rp[i]));
  for (let k = 0; k < taps; k++) perVector.push(...W.get(ob), ...W.i32(k), ...W.get(CB), ...W.mul, ...W.add, ...W.vload(0), ...W.set(acc[k]));
  perVector.push(
    ...forLoop(xx, W.i32(0), W.get(xa), edge),
    ...forLoop(xx, W.get(xa), W.get(xb), interior),
    ...forLoop(xx, W.get(xb), W.get(Wo), edge),
  );
  if (!input) for (let k = 0; k < taps; k++) perVector.push(...W.get(ob), ...W.i32(k), ...W.get(CB), ...W.mul, ...W.add, ...W.get(acc[k]), ...W.vstore(0));
  // dq was advanced by this vector's offset: take it back.
  perVector.push(...W.get(dq), ...W.get(tmp), ...W.sub, ...W.set(dq));

  const perRow: Bytes = [
    ...W.get(dy), ...W.get(n), ...W.get(Ho), ...W.mul, ...W.get(y), ...W.add, ...W.get(Wo), ...W.mul, ...W.get(CB), ...W.mul, ...W.add, ...W.set(dq),
  ];
  for (let i = 0; i < kh; i++) {
    perRow.push(
      ...W.get(y), ...W.get(sh), ...W.mul, ...W.i32(i), ...W.get(dh), ...W.mul, ...W.add, ...W.get(pt), ...W.sub, ...W.set(iy),
      // row = iy inside ? x + ((n*H + iy)*W)*CB : zero
      ...W.get(map), ...W.get(n), ...W.get(H), ...W.mul, ...W.get(iy), ...W.add, ...W.get(Wd), ...W.mul, ...W.get(CB), ...W.mul, ...W.add,
      ...W.get(zero),
      ...W.get(iy), ...W.get(H), ...W.ltU, ...W.select, ...W.set(row[i]),
    );
  }
  perRow.push(...forLoop(cv, W.i32(0), W.get(CV), perVector));
  code.push(...forLoop(n, W.i32(0), W.get(N), forLoop(y, W.i32(0), W.get(Ho), perRow)));
  return {
    name: input ? 'dwInputGrad' : 'dwFilterGrad',
    params: Array(18).fill(I32),
    locals: [[i32Count, I32], [v128Count, V128]],
    code,
  };
}

/**
 * dW [kh, kw, c, 1] of a depthwise convolution from x [n, h, w, c] and dy [n, ho, wo, c] on
 * tfjs-wasm, or undefined where this kernel does not apply (the caller falls back).
 */
export function depthwiseFilterGradSimd(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo, multiplier: number): tf.Tensor4D | undefined {
  const c = x.shape[3];
  const w = x.shape[2];
  const { filterHeight: kh, filterWidth: kw } = info;
  if (multiplier !== 1 || c % 4 !== 0 || kh * kw > 25) return undefined;
  const k = dwKernels(kh, kw);
  if (!k) return undefined;
  const out = heapTensor<tf.Rank.R4>([kh, kw, c, 1]);
  const zero = tf.zeros([w * c]);
  try {
    k.dwFilterGrad(heapOffset(x), heapOffset(dy), heapOffset(out), heapOffset(zero), ...geometry(x.shape, info));
  } finally {
    zero.dispose();
  }
  return out;
}

function dwKernels(kh: number, kw: number): DwKernels | undefined {
  return heapKernels<DwKernels>(`dw-grads-${kh}x${kw}`, () => [dwFn(kh, kw, false), dwFn(kh, kw, true)]);
}

type Geometry = [n: number, h: number, w: number, c: number, ho: number, wo: number, sh: number, sw: number,
  dh: number, dw: number, pt: number, pl: number, xa: number, xb: number];

function geometry(shape: number[], info: tf.backend_util.Conv2DInfo): Geometry {
  const [n, h, w, c] = shape;
  const { filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, outHeight: ho, outWidth: wo } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  // Output columns whose every tap lies inside the row: [xa, xb).
  const xa = Math.min(wo, Math.ceil(pl / sw));
  const xb = Math.max(xa, Math.min(wo, Math.floor((w - 1 + pl - (kw - 1) * dw) / sw) + 1));
  return [n, h, w, c, ho, wo, sh, sw, dh, dw, pt, pl, xa, xb];
}

/**
 * dx [n, h, w, c] of a depthwise convolution from dy and the filter [kh, kw, c, 1] on tfjs-wasm, or
 * undefined where the kernel does not apply.
 */
export function depthwiseInputGradSimd(dy: tf.Tensor4D, filter: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D | undefined {
  const [kh, kw, c, m] = filter.shape;
  if (m !== 1 || c % 4 !== 0 || kh * kw > 25) return undefined;
  const k = dwKernels(kh, kw);
  if (!k) return undefined;
  const shape = [info.batchSize, info.inHeight, info.inWidth, c];
  const out = heapTensor<tf.Rank.R4>(shape);
  const sink = heapTensor([info.inWidth * c]);
  try {
    k.dwInputGrad(heapOffset(filter), heapOffset(dy), heapOffset(out), heapOffset(sink), ...geometry(shape, info));
  } finally {
    sink.dispose();
  }
  return out;
}
