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
import { Bytes, F32, Fn, forLoop, I32, MAX_PAGES, moduleBytes, simd, V128, W } from '../runtime/wasm-emitter';
import { EXP_CONST_COUNT, expConstants, expFloor, expOf } from '../engine/simd-ops';

// ---- kernels ----

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

/** Where the constant vectors of the exp (lib/engine/simd-ops) start among a kernel's v128 locals. */
interface ExpConsts {
  first: number;
}
const cFloor = (c: ExpConsts) => expFloor(c.first);
const expConstsInit = (c: ExpConsts): Bytes => expConstants(c.first);
/** e^x for x (in local t, already >= -87) lane-wise, on the stack; t and kf are overwritten. */
const expV = (t: number, kf: number, c: ExpConsts): Bytes => expOf(t, kf, c.first);

/** The four lanes of v128 local t summed, on the stack. */
const laneSum = (t: number): Bytes => [
  ...W.get(t), ...W.lane(0), ...W.get(t), ...W.lane(1), ...W.fadd, ...W.get(t), ...W.lane(2), ...W.get(t), ...W.lane(3), ...W.fadd, ...W.fadd,
];

/**
 * With the messages of one pixel in x[0..total): Q row = normalise(prior row * exp(msg - max msg)),
 * the prior row at local rowPrior, the Q row's address computed by qRow. vs: a v128 local for the sum.
 */
function softmaxRow(total: number, x: number, mx: number, tmp: number, kf: number, vs: number, rowPrior: number, qRow: Bytes, c: ExpConsts): Bytes {
  const body: Bytes = [...W.get(x), ...W.set(mx)];
  for (let v = 1; v < total; v++) body.push(...W.get(mx), ...W.get(x + v), ...W.vmax, ...W.set(mx));
  // horizontal max into all lanes
  body.push(...W.get(mx), ...W.lane(0), ...W.get(mx), ...W.lane(1), ...W.fmax, ...W.get(mx), ...W.lane(2), ...W.get(mx), ...W.lane(3), ...W.fmax, ...W.fmax, ...W.fsplat, ...W.set(mx));
  for (let v = 0; v < total; v++) {
    // x = max(msg - mx, -87), e = exp(x) * prior, summed lane-wise
    body.push(...W.get(x + v), ...W.get(mx), ...W.vsub, ...W.get(cFloor(c)), ...W.vmax, ...W.set(tmp));
    body.push(...expV(tmp, kf, c), ...W.get(rowPrior), ...W.vload(v * 16), ...W.vmul, ...W.tee(x + v));
    if (v > 0) body.push(...W.get(vs), ...W.vadd);
    body.push(...W.set(vs));
  }
  // Q row = e / sum
  body.push(...W.f32(1), ...laneSum(vs), ...W.fdiv, ...W.fsplat, ...W.set(tmp));
  body.push(...qRow, ...W.set(rowPrior));
  for (let v = 0; v < total; v++) body.push(...W.get(rowPrior), ...W.get(x + v), ...W.get(tmp), ...W.vmul, ...W.vstore(v * 16));
  return body;
}

/**
 * One part of the classes (nv vectors a pixel), the kernels' simplex sizes d1s in order:
 * splatAll(n, q, qStrideB, offs0, wts0, val0, offs1, ...): every kernel's splat in one pass over
 * Q (the part's first vector at q, rows qStrideB apart: the whole row where there is one part).
 */
function splatAllFn(d1s: number[], nv: number): Fn {
  const K = d1s.length;
  const [n, q, qStride] = [0, 1, 2];
  const kp = (k: number) => 3 + 3 * k; // offs, wts, val
  const np = 3 + 3 * K;
  const p = np;
  const row = np + 1;
  const e = np + 2;
  const maxD1 = Math.max(...d1s);
  const o = np + 3; // maxD1 i32
  const wk = o + maxD1; // maxD1 v128
  const a = wk + maxD1; // nv v128
  const stride = nv * 16;
  const body: Bytes = [...W.get(q), ...W.get(p), ...W.get(qStride), ...W.mul, ...W.add, ...W.set(row)];
  for (let c = 0; c < nv; c++) body.push(...W.get(row), ...W.vload(c * 16), ...W.set(a + c));
  d1s.forEach((d1, k) => {
    const [offs, wts, val] = [kp(k), kp(k) + 1, kp(k) + 2];
    body.push(...W.get(p), ...W.i32(d1 * 4), ...W.mul, ...W.set(e));
    for (let j = 0; j < d1; j++) {
      body.push(...W.get(val), ...W.get(offs), ...W.get(e), ...W.add, ...W.i32load(j * 4), ...W.i32(stride), ...W.mul, ...W.add, ...W.set(o + j));
      body.push(...W.get(wts), ...W.get(e), ...W.add, ...W.f32load(j * 4), ...W.fsplat, ...W.set(wk + j));
    }
    for (let c = 0; c < nv; c++) {
      for (let j = 0; j < d1; j++) {
        body.push(...W.get(o + j), ...W.get(o + j), ...W.vload(c * 16), ...W.get(wk + j), ...W.get(a + c), ...W.vmul, ...W.vadd, ...W.vstore(c * 16));
      }
    }
  });
  return {
    name: `splatAll_${nv}`,
    params: Array(np).fill(I32),
    locals: [[3 + maxD1, I32], [maxD1 + nv, V128]],
    code: forLoop(p, W.i32(0), W.get(n), body),
  };
}

/**
 * sliceUpdate(n, prior, q, offs0, wts0, val0, weight0, offs1, ...): every kernel's slice
 * (weighted, summed in kernel order as slice + accumulate do) straight into the update, so the
 * messages never go through memory; Q is overwritten in place (the splat has read it).
 */
function sliceUpdateFn(d1s: number[], nv: number): Fn {
  const K = d1s.length;
  const [n, prior, q] = [0, 1, 2];
  const kp = (k: number) => 3 + 4 * k; // offs, wts, val, weight
  const np = 3 + 4 * K;
  const p = np;
  const rowP = np + 1;
  const e = np + 2;
  const maxD1 = Math.max(...d1s);
  const o = np + 3; // maxD1 i32
  const wk = o + maxD1; // maxD1 v128
  const x = wk + maxD1; // nv v128
  const mx = x + nv;
  const tmp = mx + 1;
  const kf = mx + 2;
  const vs = mx + 3;
  const consts: ExpConsts = { first: mx + 4 };
  const stride = nv * 16;
  const body: Bytes = [...W.get(prior), ...W.get(p), ...W.i32(stride), ...W.mul, ...W.add, ...W.set(rowP)];
  d1s.forEach((d1, k) => {
    const [offs, wts, val, weight] = [kp(k), kp(k) + 1, kp(k) + 2, kp(k) + 3];
    body.push(...W.get(p), ...W.i32(d1 * 4), ...W.mul, ...W.set(e));
    for (let j = 0; j < d1; j++) {
      body.push(...W.get(val), ...W.get(offs), ...W.get(e), ...W.add, ...W.i32load(j * 4), ...W.i32(stride), ...W.mul, ...W.add, ...W.set(o + j));
      body.push(...W.get(wts), ...W.get(e), ...W.add, ...W.f32load(j * 4), ...W.get(weight), ...W.fmul, ...W.fsplat, ...W.set(wk + j));
    }
    for (let c = 0; c < nv; c++) {
      for (let j = 0; j < d1; j++) {
        body.push(...W.get(o + j), ...W.vload(c * 16), ...W.get(wk + j), ...W.vmul);
        if (j > 0) body.push(...W.vadd);
      }
      if (k > 0) body.push(...W.get(x + c), ...W.vadd);
      body.push(...W.set(x + c));
    }
  });
  body.push(...softmaxRow(nv, x, mx, tmp, kf, vs, rowP, [...W.get(q), ...W.get(p), ...W.i32(stride), ...W.mul, ...W.add], consts));
  const params: number[] = [I32, I32, I32];
  for (let k = 0; k < K; k++) params.push(I32, I32, I32, F32);
  return {
    name: 'sliceUpdate',
    params,
    locals: [[3 + maxD1, I32], [maxD1 + nv + 4 + EXP_CONST_COUNT, V128]],
    code: [...expConstsInit(consts), ...forLoop(p, W.i32(0), W.get(n), body)],
  };
}

/**
 * unary(src, n, C, prior, q, mask, floor): from the score map's rows (C floats a pixel, in the
 * messages' buffer) the padded rows of the prior, exp(logit - max) or max(prob, floor), and of
 * Q0 = the prior normalised. `mask` holds the last vector's lane mask (classes past C are 0).
 */
function unaryFn(nv: number, logits: boolean): Fn {
  const [src, n, C, prior, q, mask, floor] = [0, 1, 2, 3, 4, 5, 6];
  const p = 7;
  const s = 8;
  const rowP = 9;
  const x = 10; // nv v128
  const tmp = 10 + nv;
  const kf = 11 + nv;
  const mk = 12 + nv;
  const mx = 13 + nv;
  const vs = 14 + nv;
  const ninf = 15 + nv;
  const fl = 16 + nv;
  const consts: ExpConsts = { first: 17 + nv };
  const stride = nv * 16;
  const body: Bytes = [
    ...W.get(src), ...W.get(p), ...W.get(C), ...W.mul, ...W.i32(4), ...W.mul, ...W.add, ...W.set(s),
    ...W.get(prior), ...W.get(p), ...W.i32(stride), ...W.mul, ...W.add, ...W.set(rowP),
  ];
  // the row; classes past C: -inf for the max (their values are masked to 0 below)
  for (let v = 0; v < nv; v++) {
    body.push(...W.get(s), ...W.vload(v * 16));
    if (v === nv - 1) body.push(...W.get(ninf), ...W.get(mk), ...simd(0x52)); // bitselect(row, -inf, mask)
    body.push(...W.set(x + v));
  }
  if (logits) {
    body.push(...W.get(x), ...W.set(mx));
    for (let v = 1; v < nv; v++) body.push(...W.get(mx), ...W.get(x + v), ...W.vmax, ...W.set(mx));
    body.push(...W.get(mx), ...W.lane(0), ...W.get(mx), ...W.lane(1), ...W.fmax, ...W.get(mx), ...W.lane(2), ...W.get(mx), ...W.lane(3), ...W.fmax, ...W.fmax, ...W.fsplat, ...W.set(mx));
  }
  for (let v = 0; v < nv; v++) {
    body.push(...W.get(x + v));
    if (logits) body.push(...W.get(mx), ...W.vsub, ...W.get(cFloor(consts)), ...W.vmax, ...W.set(tmp), ...expV(tmp, kf, consts));
    else body.push(...W.get(fl), ...W.vmax);
    if (v === nv - 1) body.push(...W.get(mk), ...simd(0x4e)); // and: 0 past C
    body.push(...W.tee(x + v), ...W.set(tmp), ...W.get(rowP), ...W.get(tmp), ...W.vstore(v * 16), ...W.get(tmp));
    if (v > 0) body.push(...W.get(vs), ...W.vadd);
    body.push(...W.set(vs));
  }
  body.push(...W.f32(1), ...laneSum(vs), ...W.fdiv, ...W.fsplat, ...W.set(tmp));
  body.push(...W.get(q), ...W.get(p), ...W.i32(stride), ...W.mul, ...W.add, ...W.set(rowP));
  for (let v = 0; v < nv; v++) body.push(...W.get(rowP), ...W.get(x + v), ...W.get(tmp), ...W.vmul, ...W.vstore(v * 16));
  return {
    name: logits ? 'unaryLogits' : 'unaryProbs',
    params: [I32, I32, I32, I32, I32, I32, F32],
    locals: [[3, I32], [nv + 7 + EXP_CONST_COUNT, V128]],
    code: [
      ...expConstsInit(consts), ...W.get(mask), ...W.vload(0), ...W.set(mk),
      ...W.f32(-Infinity), ...W.fsplat, ...W.set(ninf), ...W.get(floor), ...W.fsplat, ...W.set(fl),
      ...forLoop(p, W.i32(0), W.get(n), body),
    ],
  };
}

/** unpad(q, n, C, dst): Q's padded rows to C floats a pixel (the padding of a row lands on the next, then is overwritten). */
function unpadFn(nv: number): Fn {
  const [q, n, C, dst] = [0, 1, 2, 3];
  const p = 4;
  const a = 5;
  const b = 6;
  const body: Bytes = [
    ...W.get(q), ...W.get(p), ...W.i32(nv * 16), ...W.mul, ...W.add, ...W.set(a),
    ...W.get(dst), ...W.get(p), ...W.get(C), ...W.mul, ...W.i32(4), ...W.mul, ...W.add, ...W.set(b),
  ];
  for (let v = 0; v < nv; v++) body.push(...W.get(b), ...W.get(a), ...W.vload(v * 16), ...W.vstore(v * 16));
  return { name: 'unpad', params: [I32, I32, I32, I32], locals: [[3, I32]], code: forLoop(p, W.i32(0), W.get(n), body) };
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
  const vs = 13 + total; // v128
  const consts: ExpConsts = { first: 14 + total };
  const rowBytes = total * 16;
  const body: Bytes = [
    ...W.get(prior), ...W.get(p), ...W.i32(rowBytes), ...W.mul, ...W.add, ...W.set(rowQ), // prior row (q row = same offset from q)
    ...W.get(msg0), ...W.get(p), ...W.i32(nvs[0] * 16), ...W.mul, ...W.add, ...W.set(m0),
  ];
  if (nvs.length > 1) body.push(...W.get(msg1), ...W.get(p), ...W.i32(nvs[1] * 16), ...W.mul, ...W.add, ...W.set(m1));
  // load messages
  let v = 0;
  for (let t = 0; t < nvs.length; t++) {
    for (let c = 0; c < nvs[t]; c++, v++) {
      body.push(...W.get(t === 0 ? m0 : m1), ...W.vload(c * 16), ...W.set(x + v));
    }
  }
  body.push(...softmaxRow(total, x, mx, tmp, kf, vs, rowQ, [...W.get(q), ...W.get(p), ...W.i32(rowBytes), ...W.mul, ...W.add], consts));
  return {
    name: 'update',
    params: [I32, I32, I32, I32, I32, I32],
    locals: [[4, I32], [total + 4 + EXP_CONST_COUNT, V128]],
    code: [...expConstsInit(consts), ...forLoop(p, W.get(p0), W.get(p1), body)],
  };
}

// ---- modules and instances ----

export interface SimdExports {
  slice(d1: number, nv: number, accumulate: boolean): (n: number, off: number, w: number, val: number, vStrideB: number, out: number, outStrideB: number, scale: number) => void;
  blurChains(nv: number): (chains: number, start: number, end: number, val: number, strideB: number) => void;
  blurPairs(nv: number): (nb: number, base: number, m: number, src: number, dst: number, strideB: number) => void;
  update: (prior: number, q: number, msg0: number, msg1: number, p0: number, p1: number) => void;
  /** One part only (the fused single-thread path): */
  /** Every kernel's splat of one part of nv vectors: (n, q, qStrideB, then offsets, weights, values per kernel) */
  splatAll(nv: number): (...args: number[]) => void;
  /** (n, prior, q, then offsets, weights, values, weight per kernel) */
  sliceUpdate?: (...args: number[]) => void;
  unaryLogits?: (src: number, n: number, C: number, prior: number, q: number, mask: number, floor: number) => void;
  unaryProbs?: (src: number, n: number, C: number, prior: number, q: number, mask: number, floor: number) => void;
  unpad?: (q: number, n: number, C: number, dst: number) => void;
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
      for (const nv of nvSet) fns.push(sliceFn(d1, nv, false), sliceFn(d1, nv, true));
    }
    for (const nv of nvSet) fns.push(blurChainsFn(nv), blurPairsFn(nv), splatAllFn(shape.d1s, nv));
    fns.push(updateFn(shape.nvs));
    if (shape.nvs.length === 1) {
      const nv = shape.nvs[0];
      fns.push(sliceUpdateFn(shape.d1s, nv), unaryFn(nv, true), unaryFn(nv, false), unpadFn(nv));
    }
    mod = new WebAssembly.Module(moduleBytes(fns, 1, MAX_PAGES));
    modules.set(key, mod);
  }
  return mod;
}

export function simdInstance(shape: SimdShape, memory: WebAssembly.Memory): SimdExports {
  const ex = new WebAssembly.Instance(simdModule(shape), { env: { mem: memory } }).exports as Record<string, never>;
  return {
    slice: (d1, nv, acc) => ex[`slice${d1}_${nv}_${acc ? 'add' : 'set'}`],
    blurChains: (nv) => ex[`blurc_${nv}`],
    blurPairs: (nv) => ex[`blurp_${nv}`],
    update: ex.update,
    splatAll: (nv) => ex[`splatAll_${nv}`],
    sliceUpdate: ex.sliceUpdate,
    unaryLogits: ex.unaryLogits,
    unaryProbs: ex.unaryProbs,
    unpad: ex.unpad,
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
