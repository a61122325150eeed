/**
 * Mean-field inference of the fully connected CRF with Gaussian edge potentials
 * (Krähenbühl & Koltun, NIPS 2011), the pieces shared by the one-thread and two-thread drivers.
 *
 * With U = -log p, Potts compatibility and symmetric kernel normalisation (as the reference
 * densecrf does by default), one iteration is
 *     Q <- softmax(-U + w1 K~1 Q + w2 K~2 Q),   K~ = D^-1/2 K D^-1/2,  D = K 1
 * (the Potts term sum_{l' != l} differs from -K Q_l only by a per-pixel constant, which the
 * softmax cancels). exp(-U) is kept as a "prior" so the loop needs no logarithms:
 * Q <- normalise(prior * exp(msg - max msg)).
 */
import { RawImage, ScoreMap } from '../contract';
import { exactFilter } from './exact';
import { LatticeGeometry, LatticeScratch, buildLattice, latticeFilter, latticeScratch } from './lattice';
import { FeatureSource, buildLatticeWasm } from './lattice-wasm';
import type { Arena } from './arena';

/** Probabilities below this are raised to it before -log (p = 0 would make U infinite). */
export const DEFAULT_PROB_FLOOR = 1e-5;

/**
 * exp(-U) per pixel and class: softmax of logits (exact log-softmax, no floor needed), or the
 * probabilities raised to the floor.
 */
export function unaryPrior(map: ScoreMap, floor: number, out: Float32Array): void {
  const { classes: C, data } = map;
  const len = data.length;
  if (map.kind === 'logits') {
    for (let p = 0; p < len; p += C) {
      let mx = -Infinity;
      for (let c = 0; c < C; c++) if (data[p + c] > mx) mx = data[p + c];
      for (let c = 0; c < C; c++) out[p + c] = expNonPositive(data[p + c] - mx);
    }
  } else {
    for (let i = 0; i < len; i++) {
      const v = data[i];
      out[i] = v > floor ? v : floor;
    }
  }
}

/** Features of the appearance kernel: (x/θα, y/θα, r/θβ, g/θβ, b/θβ). */
export function appearanceFeatures(image: RawImage, thetaAlpha: number, thetaBeta: number): Float32Array {
  const { width: W, height: H, data } = image;
  const f = new Float32Array(W * H * 5);
  const sp = 1 / thetaAlpha;
  const sc = 1 / thetaBeta;
  for (let y = 0, p = 0; y < H; y++) {
    for (let x = 0; x < W; x++, p++) {
      const o = p * 5;
      f[o] = x * sp;
      f[o + 1] = y * sp;
      f[o + 2] = data[p * 3] * sc;
      f[o + 3] = data[p * 3 + 1] * sc;
      f[o + 4] = data[p * 3 + 2] * sc;
    }
  }
  return f;
}

/** Features of the smoothness kernel: (x/θγ, y/θγ). */
export function smoothnessFeatures(width: number, height: number, thetaGamma: number): Float32Array {
  const f = new Float32Array(width * height * 2);
  const s = 1 / thetaGamma;
  for (let y = 0, p = 0; y < height; y++) {
    for (let x = 0; x < width; x++, p++) {
      f[p * 2] = x * s;
      f[p * 2 + 1] = y * s;
    }
  }
  return f;
}

/** A normalised Gaussian kernel with its weight, filtered through the lattice or exactly. */
export type CrfKernel =
  | { kind: 'lattice'; weight: number; g: LatticeGeometry }
  | { kind: 'exact'; weight: number; features: Float32Array; n: number; d: number; norm: Float64Array };

/**
 * Builds the lattice and folds the symmetric normalisation D^-1/2 into its splat/slice weights
 * (D = the lattice's own response to all ones, so any global scale of the lattice cancels).
 * The construction runs as WebAssembly (lattice-wasm.ts, the same result bit for bit) unless
 * `wasm` is false or DEEPLAB_CRF_WASM_LATTICE=0, or the lattice's keys do not fit it; with an
 * arena, into the arena (where the SIMD iterations use it as it lies), when it has room. The
 * features may be given as a FeatureSource, computed then where the lattice is built.
 */
export function latticeKernel(source: Float32Array | FeatureSource, n: number, d: number, weight: number,
  wasm = process.env.DEEPLAB_CRF_WASM_LATTICE !== '0', arena?: Arena): CrfKernel {
  let built: LatticeGeometry | undefined;
  // past the arena's limit, in the builder's own memory; past 4 GiB there too, in JavaScript
  for (const into of wasm ? (arena ? [arena, undefined] : [undefined]) : []) {
    try {
      built = buildLatticeWasm(source, n, d, true, into);
      break;
    } catch {
      built = undefined;
    }
  }
  if (built) return { kind: 'lattice', weight, g: built };
  const features = source instanceof Float32Array ? source
    : source.kind === 'appearance' ? appearanceFeatures(source.image, source.thetaAlpha, source.thetaBeta)
      : smoothnessFeatures(source.width, source.height, source.thetaGamma);
  const g = buildLattice(features, n, d);
  const ones = new Float32Array(n).fill(1);
  const deg = new Float32Array(n);
  latticeFilter(g, latticeScratch(g, 1), ones, 1, 0, 1, deg, 1, false);
  const d1 = d + 1;
  const w = g.weights;
  for (let p = 0; p < n; p++) {
    const s = 1 / Math.sqrt(deg[p] + 1e-20);
    for (let k = 0; k < d1; k++) w[p * d1 + k] *= s;
  }
  return { kind: 'lattice', weight, g };
}

/** The same kernel filtered exactly by brute force (O(n^2)): the reference for tests. */
export function exactKernel(features: Float32Array, n: number, d: number, weight: number): CrfKernel {
  const ones = new Float32Array(n).fill(1);
  const deg = new Float32Array(n);
  exactFilter(features, n, d, ones, 1, 0, 1, deg, 1, false);
  const norm = new Float64Array(n);
  for (let p = 0; p < n; p++) norm[p] = 1 / Math.sqrt(deg[p] + 1e-20);
  return { kind: 'exact', weight, features, n, d, norm };
}

/** Per-thread scratch for a kernel: lattice value rows for `channels` classes. */
export function kernelScratch(k: CrfKernel, channels: number): LatticeScratch | null {
  return k.kind === 'lattice' ? latticeScratch(k.g, channels) : null;
}

/**
 * The pairwise message for classes [c0, c0 + ct): msg[p * ct + c] = sum_k w_k (K~_k Q)[p, c0 + c].
 * With no kernels the message is zero.
 */
export function pairwiseMessage(kernels: readonly CrfKernel[], scratch: readonly (LatticeScratch | null)[], Q: Float32Array,
  C: number, c0: number, ct: number, msg: Float32Array): void {
  if (kernels.length === 0) {
    msg.fill(0);
    return;
  }
  for (let i = 0; i < kernels.length; i++) {
    const k = kernels[i];
    if (k.kind === 'lattice') latticeFilter(k.g, scratch[i]!, Q, C, c0, ct, msg, k.weight, i > 0);
    else exactFilter(k.features, k.n, k.d, Q, C, c0, ct, msg, k.weight, i > 0, k.norm);
  }
}

// exp(x) for x <= 0 to float32 accuracy (relative error < 1e-7), about twice as fast as
// Math.exp here: x = r - k ln2 with |r| <= ln2/2, a degree-7 Taylor polynomial for e^r, 2^-k
// from a table.
const LOG2E = Math.LOG2E;
const LN2 = Math.LN2;
const POW2_NEG = new Float64Array(128);
for (let k = 0; k < 128; k++) POW2_NEG[k] = Math.pow(2, -k);

function expNonPositive(x: number): number {
  if (x < -87) return 0;
  const k = (0.5 - x * LOG2E) | 0;
  const r = x + k * LN2;
  const e = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040)))))));
  return e * POW2_NEG[k];
}

/**
 * Q[p] = normalise(prior[p] * exp(msg[p] - max msg[p])) for pixels [p0, p1). The message of
 * class c comes from the part that owns it: parts split the classes in order, part t holding
 * cts[t] classes in msgs[t] (pixel-major, cts[t] per pixel). One or two parts.
 */
export function updateQ(prior: Float32Array, C: number, msgs: readonly Float32Array[], cts: readonly number[], Q: Float32Array,
  p0: number, p1: number): void {
  if (msgs.length === 1) updateOne(prior, C, msgs[0], Q, p0, p1);
  else if (msgs.length === 2) updateTwo(prior, C, msgs[0], cts[0], msgs[1], cts[1], Q, p0, p1);
  else throw new Error('updateQ takes one or two message parts');
}

function updateOne(prior: Float32Array, C: number, msg: Float32Array, Q: Float32Array, p0: number, p1: number): void {
  for (let p = p0; p < p1; p++) {
    const base = p * C;
    let mx = -Infinity;
    for (let c = 0; c < C; c++) if (msg[base + c] > mx) mx = msg[base + c];
    let sum = 0;
    for (let c = 0; c < C; c++) {
      const e = prior[base + c] * expNonPositive(msg[base + c] - mx);
      Q[base + c] = e;
      sum += e;
    }
    normalise(prior, Q, base, C, sum);
  }
}

function updateTwo(prior: Float32Array, C: number, ma: Float32Array, ca: number, mb: Float32Array, cb: number, Q: Float32Array,
  p0: number, p1: number): void {
  for (let p = p0; p < p1; p++) {
    const base = p * C;
    const ba = p * ca;
    const bb = p * cb;
    let mx = -Infinity;
    for (let c = 0; c < ca; c++) if (ma[ba + c] > mx) mx = ma[ba + c];
    for (let c = 0; c < cb; c++) if (mb[bb + c] > mx) mx = mb[bb + c];
    let sum = 0;
    for (let c = 0; c < ca; c++) {
      const e = prior[base + c] * expNonPositive(ma[ba + c] - mx);
      Q[base + c] = e;
      sum += e;
    }
    for (let c = 0; c < cb; c++) {
      const e = prior[base + ca + c] * expNonPositive(mb[bb + c] - mx);
      Q[base + ca + c] = e;
      sum += e;
    }
    normalise(prior, Q, base, C, sum);
  }
}

function normalise(prior: Float32Array, Q: Float32Array, base: number, C: number, sum: number): void {
  if (!(sum > 0)) {
    // Every class underflowed (a prior of exactly 0 where the message peaks): keep the prior.
    sum = 0;
    for (let c = 0; c < C; c++) sum += prior[base + c];
    for (let c = 0; c < C; c++) Q[base + c] = prior[base + c];
  }
  const inv = 1 / sum;
  for (let c = 0; c < C; c++) Q[base + c] *= inv;
}

/** Q0 = softmax(-U) = the prior normalised, for pixels [p0, p1). */
export function initialQ(prior: Float32Array, C: number, Q: Float32Array, p0: number, p1: number): void {
  for (let p = p0; p < p1; p++) {
    const base = p * C;
    let sum = 0;
    for (let c = 0; c < C; c++) sum += prior[base + c];
    const inv = 1 / sum;
    for (let c = 0; c < C; c++) Q[base + c] = prior[base + c] * inv;
  }
}

/** Splits C classes into `parts` contiguous ranges as evenly as possible. */
export function splitClasses(C: number, parts: number): { c0: number; ct: number }[] {
  const out: { c0: number; ct: number }[] = [];
  let c0 = 0;
  for (let t = 0; t < parts; t++) {
    const ct = Math.floor(C / parts) + (t < C % parts ? 1 : 0);
    out.push({ c0, ct });
    c0 += ct;
  }
  return out;
}
