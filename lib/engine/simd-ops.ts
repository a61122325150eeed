/**
 * The f32 exponential (scalar and f32x4) of the engine's and the CRF's softmaxes: exp(x) = 2^k * p(r),
 * k = round(x / ln 2), r = x - k ln 2 (Cody-Waite split), p the degree-6 Taylor polynomial
 * (|r| <= ln2 / 2: relative error ~2e-7, float32's rounding), 2^k built in the exponent bits.
 * x is clamped to [-87, 88].
 */
import { Bytes, W } from '../runtime/wasm-emitter';


const LOG2E = 1.4426950408889634;
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
const POLY = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1];
/** 1.5 * 2^23: x + ROUNDER - ROUNDER rounds x (|x| < 2^22) to an integer, ties to even, as f32x4.nearest does. */
const ROUNDER = 12582912;
const EXP_F32 = [LOG2E, LN2_HI, LN2_LO, -87, 88, ...POLY, ROUNDER];
/** v128 locals the constants of the f32x4 exp take: the f32 ones above and the exponent bias 127 << 23. */
export const EXP_CONST_COUNT = EXP_F32.length + 1;
const cLog2e = (first: number) => first;
const cLn2hi = (first: number) => first + 1;
const cLn2lo = (first: number) => first + 2;
/** The constant local holding -87 in every lane: the exp's floor, for callers that clamp before expOf. */
export const expFloor = (first: number) => first + 3;
const cCeil = (first: number) => first + 4;
const cPoly = (first: number, i: number) => first + 5 + i;
const cRounder = (first: number) => first + 5 + POLY.length;
const cBias = (first: number) => first + EXP_F32.length;

/** Fills EXP_CONST_COUNT consecutive v128 locals from `first` (once, before the loop that uses them). */
export function expConstants(first: number): Bytes {
  const out: Bytes = [];
  EXP_F32.forEach((v, i) => out.push(...W.f32(v), ...W.fsplat, ...W.set(first + i)));
  out.push(...W.i32(127 << 23), ...W.isplat, ...W.set(cBias(first)));
  return out;
}

/**
 * e^x lane-wise for x in v128 local t, already within [-87, 88], left on the stack; t is
 * overwritten (it ends as r) and kf is scratch. k = nearest(x log2 e) by the rounder: y =
 * x log2 e + 1.5 * 2^23 holds k in its low mantissa bits, so y's bits shifted left by 23 are
 * k << 23, and 2^k is that plus 127 << 23. No float-to-int conversion (a long sequence in V8's
 * SIMD) and no rounding instruction; the same k, so the same bits, as nearest + truncation.
 */
export function expOf(t: number, kf: number, first: number): Bytes {
  const k: Bytes = [...W.get(kf), ...W.get(cRounder(first)), ...W.vsub];
  const out: Bytes = [
    // kf = y = x * log2 e + rounder
    ...W.get(t), ...W.get(cLog2e(first)), ...W.vmul, ...W.get(cRounder(first)), ...W.vadd, ...W.set(kf),
    // r = x - k * ln2_hi - k * ln2_lo
    ...W.get(t), ...k, ...W.get(cLn2hi(first)), ...W.vmul, ...W.vsub,
    ...k, ...W.get(cLn2lo(first)), ...W.vmul, ...W.vsub, ...W.set(t),
  ];
  // e^r ~ 1 + r + r^2/2 + ... + r^6/720 (Horner)
  out.push(...W.get(cPoly(first, 0)));
  for (let i = 1; i < POLY.length; i++) out.push(...W.get(t), ...W.vmul, ...W.get(cPoly(first, i)), ...W.vadd);
  // * 2^k: (y's bits << 23) + (127 << 23) as float bits
  out.push(...W.get(kf), ...W.i32(23), ...W.ishl, ...W.get(cBias(first)), ...W.iadd, ...W.vmul);
  return out;
}

/** v128 locals of vexp: the constants (EXP_CONST_COUNT from `consts`, filled by expConstants) and two scratch. */
export interface ExpLocals {
  consts: number;
  k: number;
  r: number;
}

/** f32x4 exp of the vector on the stack (clamped to [-87, 88] first), leaving the result on the stack. */
export function vexp(l: ExpLocals): Bytes {
  return [...W.get(cCeil(l.consts)), ...W.vmin, ...W.get(expFloor(l.consts)), ...W.vmax, ...W.set(l.r), ...expOf(l.r, l.k, l.consts)];
}

/** f32 locals for sexp: k and r scratch. */
export interface ScalarExpLocals {
  k: number;
  r: number;
}

/** Scalar f32 exp of the value on the stack. */
export function sexp(l: ScalarExpLocals): Bytes {
  const out: Bytes = [
    ...W.f32(88), ...W.fmin, ...W.f32(-87), ...W.fmax, ...W.set(l.r),
    ...W.get(l.r), ...W.f32(LOG2E), ...W.fmul, ...W.fnearest, ...W.set(l.k),
    ...W.get(l.r), ...W.get(l.k), ...W.f32(LN2_HI), ...W.fmul, ...W.fsub,
    ...W.get(l.k), ...W.f32(LN2_LO), ...W.fmul, ...W.fsub, ...W.set(l.r),
    ...W.f32(POLY[0]),
  ];
  for (let i = 1; i < POLY.length; i++) out.push(...W.get(l.r), ...W.fmul, ...W.f32(POLY[i]), ...W.fadd);
  out.push(...W.get(l.k), ...W.i32truncF32, ...W.i32(127), ...W.add, ...W.i32(23), ...W.shl, ...W.f32fromBits, ...W.fmul);
  return out;
}
