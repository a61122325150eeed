/**
 * Instructions beyond lib/runtime/wasm-emitter's set that the engine's SIMD kernels use, and an
 * f32 exponential (scalar and f32x4) for the softmax: exp(x) = 2^k * p(r), k = round(x / ln 2),
 * r = x - k ln 2 (Cody-Waite split), p the degree-6 Taylor polynomial (|r| <= ln2 / 2: relative
 * error ~2e-7, float32's rounding), 2^k built in the exponent bits. x is clamped to [-87, 88].
 */
import { Bytes, simd, W } from '../runtime/wasm-emitter';

export const X = {
  fsub: [0x93],
  fmin: [0x96],
  fmax: [0x97],
  fnearest: [0x90],
  i32truncF32: [0xa8],
  f32fromBits: [0xbe],
  ltU: [0x49],
  geU: [0x4f],
  gtU: [0x4b],
  vmin: simd(0xe8),
  vdiv: simd(0xe7),
  vzero: [...W.f32(0), ...W.fsplat],
};

const LOG2E = 1.4426950408889634;
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
const POLY = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];

/** v128 locals holding the constants of vexp (fill them once with expConstants before a loop). */
export interface ExpLocals {
  /** First of EXP_CONST_COUNT (12) consecutive v128 locals: log2e, ln2 hi and lo, 7 polynomial coefficients, the clamps. */
  consts: number;
  /** Two v128 scratch locals. */
  k: number;
  r: number;
}

const EXP_CONSTS = [LOG2E, LN2_HI, LN2_LO, ...POLY, -87, 88];
export const EXP_CONST_COUNT = EXP_CONSTS.length;

export function expConstants(l: ExpLocals): Bytes {
  return EXP_CONSTS.flatMap((v, i) => [...W.f32(v), ...W.fsplat, ...W.set(l.consts + i)]);
}

/** f32x4 exp of the vector on the stack, leaving the result on the stack. */
export function vexp(l: ExpLocals): Bytes {
  const c = (i: number) => W.get(l.consts + i);
  const out: Bytes = [
    ...c(11), ...X.vmin, ...c(10), ...W.vmax, ...W.set(l.r),
    ...W.get(l.r), ...c(0), ...W.vmul, ...W.vnearest, ...W.set(l.k),
    // r = x - k*ln2hi - k*ln2lo
    ...W.get(l.r), ...W.get(l.k), ...c(1), ...W.vmul, ...W.vsub,
    ...W.get(l.k), ...c(2), ...W.vmul, ...W.vsub, ...W.set(l.r),
    ...c(3),
  ];
  for (let i = 4; i < 10; i++) out.push(...W.get(l.r), ...W.vmul, ...c(i), ...W.vadd);
  // * 2^k: (k + 127) << 23 as float bits
  out.push(...W.get(l.k), ...W.truncSat, ...W.i32(127), ...W.isplat, ...W.iadd, ...W.i32(23), ...W.ishl, ...W.vmul);
  return out;
}

/** f32 locals for sexp: k and r scratch. */
export interface ScalarExpLocals {
  k: number;
  r: number;
}

/** Scalar f32 exp of the value on the stack. */
export function sexp(l: ScalarExpLocals): Bytes {
  const out: Bytes = [
    ...W.f32(88), ...X.fmin, ...W.f32(-87), ...X.fmax, ...W.set(l.r),
    ...W.get(l.r), ...W.f32(LOG2E), ...W.fmul, ...X.fnearest, ...W.set(l.k),
    ...W.get(l.r), ...W.get(l.k), ...W.f32(LN2_HI), ...W.fmul, ...X.fsub,
    ...W.get(l.k), ...W.f32(LN2_LO), ...W.fmul, ...X.fsub, ...W.set(l.r),
    ...W.f32(POLY[0]),
  ];
  for (let i = 1; i < POLY.length; i++) out.push(...W.get(l.r), ...W.fmul, ...W.f32(POLY[i]), ...W.fadd);
  out.push(...W.get(l.k), ...X.i32truncF32, ...W.i32(127), ...W.add, ...W.i32(23), ...W.shl, ...X.f32fromBits, ...W.fmul);
  return out;
}
