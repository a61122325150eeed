/**
 * The mean-field inner loops as WebAssembly SIMD (f32x4), emitted here byte by byte: no
 * compiler toolchain, no binary blob in the package. Each module is specialised for the simplex
 * size (d+1) and the number of 4-class vectors per pixel, fully unrolled over both, like the
 * JavaScript kernels in kernels.ts (which stay the fallback and the reference in tests).
 * The SIMD splat runs about 4x faster than the best JavaScript one (bench/crf.ts).
 *
 * Memory: one WebAssembly.Memory per CRF run (shared between the two threads when split), laid
 * out by an Arena (arena.ts). Classes are padded to multiples of 4 per thread's part; padding
 * lanes hold zeros throughout (zero prior -> zero Q -> zero messages), so they never disturb the
 * max or the sum of the softmax (messages are >= 0).
 */
import { Bytes, F32, Fn, forLoop, I32, MAX_PAGES, moduleBytes, V128, W } from './wasm-emitter';

// ---- kernels ----

/** splat(n, off, w, in, inStrideB, val, vStrideB): val[row(p,k)] += w(p,k) * in[p], nv vectors. */
function splatFn(d1: number, nv: number): Fn {
  const [n, off, w, inp, inStride, val, vStride] = [0, 1, 2, 3, 4, 5, 6];
  const p = 7;
  const e = 8;
  const q = 9;
  const o = 10; // d1 locals
  const wk = 10 + d1; // d1 v128 locals
  const a = 10 + 2 * d1; // v128
  const body: Bytes = [
    ...W.get(p), ...W.i32(d1 * 4), ...W.mul, ...W.set(e),
    ...W.get(inp), ...W.get(p), ...W.get(inStride), ...W.mul, ...W.add, ...W.set(q),
  ];
  for (let k = 0; k < d1; k++) {
    body.push(...W.get(val), ...W.get(off), ...W.get(e), ...W.add, ...W.i32load(k * 4), ...W.get(vStride), ...W.mul, ...W.add, ...W.set(o + k));
    body.push(...W.get(w), ...W.get(e), ...W.add, ...W.f32load(k * 4), ...W.fsplat, ...W.set(wk + k));
  }
  for (let c = 0; c < nv; c++) {
    body.push(...W.get(q), ...W.vload(c * 16), ...W.set(a));
    for (let k = 0; k < d1; k++) {
      body.push(...W.get(o + k), ...W.get(o + k), ...W.vload(c * 16), ...W.get(wk + k), ...W.get(a), ...W.vmul, ...W.vadd, ...W.vstore(c * 16));
    }
  }
  return {
    name: `splat${d1}_${nv}`,
    params: [I32, I32, I32, I32, I32, I32, I32],
    locals: [[3, I32], [d1, I32], [d1, V128], [1, V128]],
    code: forLoop(p, W.i32(0), W.get(n), body),
  };
}

/** slice(n, off, w, val, vStrideB, out, outStrideB, scale): out[p] (+)= scale * sum_k w(p,k) val[row(p,k)]. */
function sliceFn(d1: number, nv: number, accumulate: boolean): Fn {
  const [n, off, w, val, vStride, out, outStride, scale] = [0, 1, 2, 3, 4, 5, 6, 7];
  const p = 8;
  const e = 9;
  const q = 10;
  const o = 11;
  const wk = 11 + d1;
  const body: Bytes = [
    ...W.get(p), ...W.i32(d1 * 4), ...W.mul, ...W.set(e),
    ...W.get(out), ...W.get(p), ...W.get(outStride), ...W.mul, ...W.add, ...W.set(q),
  ];
  for (let k = 0; k < d1; k++) {
    body.push(...W.get(val), ...W.get(off), ...W.get(e), ...W.add, ...W.i32load(k * 4), ...W.get(vStride), ...W.mul, ...W.add, ...W.set(o + k));
    body.push(...W.get(w), ...W.get(e), ...W.add, ...W.f32load(k * 4), ...W.get(scale), ...W.fmul, ...W.fsplat, ...W.set(wk + k));
  }
  for (let c = 0; c < nv; c++) {
    body.push(...W.get(q));
    for (let k = 0; k < d1; k++) {
      body.push(...W.get(o + k), ...W.vload(c * 16), ...W.get(wk + k), ...W.vmul);
      if (k > 0) body.push(...W.vadd);
    }
    if (accumulate) body.push(...W.get(q), ...W.vload(c * 16), ...W.vadd);
    body.push(...W.vstore(c * 16));
  }
  return {
    name: `slice${d1}_${nv}_${accumulate ? 'add' : 'set'}`,
    params: [I32, I32, I32, I32, I32, I32, I32, F32],
    locals: [[3, I32], [d1, I32], [d1, V128]],
    code: forLoop(p, W.i32(0), W.get(n), body),
  };
}

/** blurc(chains, start, end, val, strideB): in place along chains of rows, each ended by 0. */
function blurChainsFn(nv: number): Fn {
  const [chains, start, end, val, stride] = [0, 1, 2, 3, 4];
  const t = 5;
  const v = 6;
  const nx = 7;
  const o = 8;
  const qq = 9;
  const prev = 10; // nv v128
  const cur = 10 + nv; // v128
  const half = 11 + nv; // v128
  const walk: Bytes = [];
  for (let c = 0; c < nv; c++) {
    walk.push(
      ...W.get(o), ...W.vload(c * 16), ...W.set(cur),
      ...W.get(o), ...W.get(cur), ...W.get(prev + c), ...W.get(qq), ...W.vload(c * 16), ...W.vadd, ...W.get(half), ...W.vmul, ...W.vadd, ...W.vstore(c * 16),
      ...W.get(cur), ...W.set(prev + c),
    );
  }
  const entry = (local: number): Bytes => [...W.get(chains), ...W.get(t), ...W.i32(4), ...W.mul, ...W.add, ...W.i32load(0), ...W.set(local),
    ...W.get(t), ...W.i32(1), ...W.add, ...W.set(t)];
  const zero: Bytes = [];
  for (let c = 0; c < nv; c++) zero.push(...W.f32(0), ...W.fsplat, ...W.set(prev + c));
  const code: Bytes = [
    ...W.f32(0.5), ...W.fsplat, ...W.set(half),
    ...W.get(start), ...W.set(t),
    ...W.block, ...W.loop, // chains
    ...W.get(t), ...W.get(end), ...W.geS, ...W.brIf(1),
    ...entry(v), ...zero,
    ...W.block, ...W.loop, // rows of one chain
    ...W.get(v), ...W.eqz, ...W.brIf(1),
    ...entry(nx),
    ...W.get(val), ...W.get(v), ...W.get(stride), ...W.mul, ...W.add, ...W.set(o),
    ...W.get(val), ...W.get(nx), ...W.get(stride), ...W.mul, ...W.add, ...W.set(qq),
    ...walk,
    ...W.get(nx), ...W.set(v),
    ...W.br(0), ...W.end, ...W.end,
    ...W.br(0), ...W.end, ...W.end,
  ];
  return { name: `blurc_${nv}`, params: [I32, I32, I32, I32, I32], locals: [[5, I32], [nv, V128], [2, V128]], code };
}

/** blurp(nb, base, m, src, dst, strideB): dst_i = src_i + (src_n1 + src_n2) / 2 for rows 1..m. */
function blurPairsFn(nv: number): Fn {
  const [nb, base, m, src, dst, stride] = [0, 1, 2, 3, 4, 5];
  const i = 6;
  const j = 7;
  const so = 8;
  const sa = 9;
  const sb = 10;
  const dOut = 11;
  const half = 12; // v128
  const body: Bytes = [
    ...W.get(nb), ...W.get(base), ...W.get(i), ...W.i32(2), ...W.mul, ...W.add, ...W.i32(2), ...W.sub, ...W.i32(4), ...W.mul, ...W.add, ...W.set(j),
    ...W.get(src), ...W.get(i), ...W.get(stride), ...W.mul, ...W.add, ...W.set(so),
    ...W.get(dst), ...W.get(i), ...W.get(stride), ...W.mul, ...W.add, ...W.set(dOut),
    ...W.get(src), ...W.get(j), ...W.i32load(0), ...W.get(stride), ...W.mul, ...W.add, ...W.set(sa),
    ...W.get(src), ...W.get(j), ...W.i32load(4), ...W.get(stride), ...W.mul, ...W.add, ...W.set(sb),
  ];
  for (let c = 0; c < nv; c++) {
    body.push(...W.get(dOut), ...W.get(so), ...W.vload(c * 16),
      ...W.get(sa), ...W.vload(c * 16), ...W.get(sb), ...W.vload(c * 16), ...W.vadd, ...W.get(half), ...W.vmul, ...W.vadd, ...W.vstore(c * 16));
  }
  const code: Bytes = [...W.f32(0.5), ...W.fsplat, ...W.set(half), ...forLoop(i, W.i32(1), [...W.get(m), ...W.i32(1), ...W.add], body)];
  return { name: `blurp_${nv}`, params: [I32, I32, I32, I32, I32, I32], locals: [[6, I32], [1, V128]], code };
}

/**
 * update(prior, q, msg0, msg1, p0, p1): Q = normalise(prior * exp(msg - max msg)) per pixel.
 * Q and prior rows hold the parts one after another (nvs[t] vectors each); msg t has rows of
 * nvs[t] vectors. exp in f32x4: x = k ln2 + r, |r| <= ln2/2 (two-constant reduction), a
 * degree-6 polynomial for e^r, 2^k built in the exponent bits; relative error about 2e-7.
 */
function updateFn(nvs: number[]): Fn {
  const [prior, q, msg0, msg1, p0, p1] = [0, 1, 2, 3, 4, 5];
  const p = 6;
  const rowQ = 7;
  const m0 = 8;
  const m1 = 9;
  const total = nvs.reduce((a, b) => a + b, 0);
  const x = 10; // total v128: messages, then e
  const mx = 10 + total; // v128
  const tmp = 11 + total; // v128
  const kf = 12 + total; // v128
  const sum = 13 + total; // f32
  const rowBytes = total * 16;
  const body: Bytes = [
    ...W.get(prior), ...W.get(p), ...W.i32(rowBytes), ...W.mul, ...W.add, ...W.set(rowQ), // prior row (q row = same offset from q)
    ...W.get(msg0), ...W.get(p), ...W.i32(nvs[0] * 16), ...W.mul, ...W.add, ...W.set(m0),
  ];
  if (nvs.length > 1) body.push(...W.get(msg1), ...W.get(p), ...W.i32(nvs[1] * 16), ...W.mul, ...W.add, ...W.set(m1));
  // load messages, max
  let v = 0;
  for (let t = 0; t < nvs.length; t++) {
    for (let c = 0; c < nvs[t]; c++, v++) {
      body.push(...W.get(t === 0 ? m0 : m1), ...W.vload(c * 16), ...W.set(x + v));
      if (v === 0) body.push(...W.get(x), ...W.set(mx));
      else body.push(...W.get(mx), ...W.get(x + v), ...W.vmax, ...W.set(mx));
    }
  }
  // horizontal max into all lanes
  body.push(...W.get(mx), ...W.lane(0), ...W.get(mx), ...W.lane(1), 0x97, ...W.get(mx), ...W.lane(2), 0x97, ...W.get(mx), ...W.lane(3), 0x97, ...W.fsplat, ...W.set(mx));
  body.push(...W.f32(0), ...W.set(sum));
  for (let c = 0; c < total; c++) {
    body.push(
      // x = max(msg - mx, -87)
      ...W.get(x + c), ...W.get(mx), ...W.vsub, ...W.f32(-87), ...W.fsplat, ...W.vmax, ...W.set(tmp),
      // k = nearest(x * log2 e)
      ...W.get(tmp), ...W.f32(Math.LOG2E), ...W.fsplat, ...W.vmul, ...W.vnearest, ...W.set(kf),
      // r = x - k * ln2_hi - k * ln2_lo
      ...W.get(tmp), ...W.get(kf), ...W.f32(0.693359375), ...W.fsplat, ...W.vmul, ...W.vsub,
      ...W.get(kf), ...W.f32(-2.12194440e-4), ...W.fsplat, ...W.vmul, ...W.vsub, ...W.set(tmp),
    );
    // e^r ~ 1 + r + r^2/2 + ... + r^6/720 (Horner)
    const coef = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];
    body.push(...W.f32(coef[0]), ...W.fsplat);
    for (let i = 1; i < coef.length; i++) body.push(...W.get(tmp), ...W.vmul, ...W.f32(coef[i]), ...W.fsplat, ...W.vadd);
    body.push(
      // * 2^k: (k + 127) << 23 as float bits
      ...W.get(kf), ...W.truncSat, ...W.i32(127), ...W.isplat, ...W.iadd, ...W.i32(23), ...W.ishl, ...W.vmul,
      // * prior
      ...W.get(rowQ), ...W.vload(c * 16), ...W.vmul, ...W.tee(x + c), ...W.set(tmp),
      ...W.get(sum), ...W.get(tmp), ...W.lane(0), ...W.fadd, ...W.get(tmp), ...W.lane(1), ...W.fadd,
      ...W.get(tmp), ...W.lane(2), ...W.fadd, ...W.get(tmp), ...W.lane(3), ...W.fadd, ...W.set(sum),
    );
  }
  // Q row = e / sum  (q row address = q + p * rowBytes)
  body.push(...W.f32(1), ...W.get(sum), ...W.fdiv, ...W.fsplat, ...W.set(tmp));
  body.push(...W.get(q), ...W.get(p), ...W.i32(rowBytes), ...W.mul, ...W.add, ...W.set(rowQ));
  for (let c = 0; c < total; c++) body.push(...W.get(rowQ), ...W.get(x + c), ...W.get(tmp), ...W.vmul, ...W.vstore(c * 16));
  return {
    name: 'update',
    params: [I32, I32, I32, I32, I32, I32],
    locals: [[4, I32], [total + 3, V128], [1, F32]],
    code: forLoop(p, W.get(p0), W.get(p1), body),
  };
}

// ---- modules and instances ----

export interface SimdExports {
  splat(d1: number, nv: number): (n: number, off: number, w: number, inp: number, inStrideB: number, val: number, vStrideB: number) => void;
  slice(d1: number, nv: number, accumulate: boolean): (n: number, off: number, w: number, val: number, vStrideB: number, out: number, outStrideB: number, scale: number) => void;
  blurChains(nv: number): (chains: number, start: number, end: number, val: number, strideB: number) => void;
  blurPairs(nv: number): (nb: number, base: number, m: number, src: number, dst: number, strideB: number) => void;
  update: (prior: number, q: number, msg0: number, msg1: number, p0: number, p1: number) => void;
}

/** What a module is specialised for: simplex sizes in use, vectors per part. */
export interface SimdShape {
  d1s: number[];
  nvs: number[];
}

const modules = new Map<string, WebAssembly.Module>();

function shapeKey(s: SimdShape): string {
  return `${s.d1s.join(',')}|${s.nvs.join(',')}`;
}

export function simdModule(shape: SimdShape): WebAssembly.Module {
  const key = shapeKey(shape);
  let mod = modules.get(key);
  if (!mod) {
    const fns: Fn[] = [];
    const nvSet = [...new Set(shape.nvs)];
    for (const d1 of [...new Set(shape.d1s)]) {
      for (const nv of nvSet) fns.push(splatFn(d1, nv), sliceFn(d1, nv, false), sliceFn(d1, nv, true));
    }
    for (const nv of nvSet) fns.push(blurChainsFn(nv), blurPairsFn(nv));
    fns.push(updateFn(shape.nvs));
    mod = new WebAssembly.Module(moduleBytes(fns, 1, MAX_PAGES));
    modules.set(key, mod);
  }
  return mod;
}

export function simdInstance(shape: SimdShape, memory: WebAssembly.Memory): SimdExports {
  const ex = new WebAssembly.Instance(simdModule(shape), { env: { mem: memory } }).exports as Record<string, never>;
  return {
    splat: (d1, nv) => ex[`splat${d1}_${nv}`],
    slice: (d1, nv, acc) => ex[`slice${d1}_${nv}_${acc ? 'add' : 'set'}`],
    blurChains: (nv) => ex[`blurc_${nv}`],
    blurPairs: (nv) => ex[`blurp_${nv}`],
    update: ex.update,
  };
}

let supported: boolean | undefined;
/** Whether this runtime has WebAssembly SIMD and shared memory (Node 16.4+ does). */
export function simdSupported(): boolean {
  if (supported === undefined) {
    try {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
      simdInstance({ d1s: [3], nvs: [1] }, memory);
      supported = true;
    } catch {
      supported = false;
    }
  }
  return supported;
}
