/**
 * Finite-difference gradient checker for tfjs functions, for tests of kernels and layers.
 *
 * The function's output is contracted with a fixed random weight tensor w, so one scalar
 * L(x) = sum(f(x) * w) probes every output; the analytic gradient of L (tf.grads, i.e.
 * the registered gradient kernels of the active backend) is compared with central
 * differences (L(x + h e_j) - L(x - h e_j)) / (2h). tfjs computes in float32; L is summed
 * in float64 from the float32 outputs so the reduction adds no noise, and the step is the
 * one float32 actually represents (fround(x + h) - fround(x - h)).
 */
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../runtime/random';

export interface GradCheckOptions {
  /** Step h. Default 1e-2: float32 rounding noise grows as 1/h, truncation as h^2. */
  epsilon?: number;
  /** Check at most this many entries per input (a seeded sample); default all. */
  maxEntries?: number;
  /** Seed of the output weights and of the entry sample. */
  seed?: number;
}

export interface InputGradCheck {
  /** Entries compared. */
  checked: number;
  /** ||analytic - numeric||_2 / max(||analytic||_2, ||numeric||_2): robust to entries near zero. */
  relError: number;
  /** max_j |analytic_j - numeric_j| over the largest |gradient| entry. */
  maxEntryError: number;
  maxAbsError: number;
  analytic: number[];
  numeric: number[];
  /** Flat indices of the compared entries. */
  indices: number[];
}

export interface GradCheckResult {
  /** Worst relError over the inputs. */
  relError: number;
  /** Worst maxEntryError over the inputs. */
  maxEntryError: number;
  inputs: InputGradCheck[];
}

/** Seeded uniform values in [lo, hi) as a float32 tensor. */
export function randomTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  const rnd = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = lo + (hi - lo) * rnd();
  return tf.tensor(v, shape, 'float32');
}

function pickIndices(size: number, max: number | undefined, rnd: () => number): number[] {
  const all = Array.from({ length: size }, (_, i) => i);
  if (max === undefined || max >= size) return all;
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, max).sort((a, b) => a - b);
}

function dot(a: ArrayLike<number>, w: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * w[i];
  return s;
}

/**
 * Compares the analytic gradients of f at `inputs` with central differences. `inputs`
 * are float32 tensors the caller owns (they are not disposed); non-differentiated
 * arguments (labels, masks) belong in f's closure. No tensor is left behind.
 */
export function gradCheck(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  options: GradCheckOptions = {},
): GradCheckResult {
  const h = options.epsilon ?? 1e-2;
  const rnd = seededRandom(options.seed ?? 1234);
  const outShape = tf.tidy(() => f(...inputs).shape);
  const outSize = outShape.reduce((a, b) => a * b, 1);
  const w = new Float64Array(outSize);
  for (let i = 0; i < outSize; i++) w[i] = 2 * rnd() - 1;
  const wt = tf.tensor(Float32Array.from(w), outShape, 'float32');
  // The float32 weights are what the analytic side sees; use exactly those on the numeric side.
  const w32 = Float64Array.from(wt.dataSync());
  try {
    const analytic = tf.tidy(() => {
      const g = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), wt)))(inputs);
      return g.map((t) => Array.from(t.dataSync()));
    });
    const values = inputs.map((x) => Float32Array.from(x.dataSync()));
    const loss = (k: number, data: Float32Array): number =>
      tf.tidy(() => {
        const xs = inputs.map((x, i) => (i === k ? tf.tensor(data, x.shape, 'float32') : x));
        return dot(f(...xs).dataSync(), w32);
      });
    const reports: InputGradCheck[] = inputs.map((x, k) => {
      const data = values[k];
      const indices = pickIndices(x.size, options.maxEntries, rnd);
      const an: number[] = [];
      const nu: number[] = [];
      for (const j of indices) {
        const orig = data[j];
        const step = h * Math.max(1, Math.abs(orig));
        const plus = Math.fround(orig + step);
        const minus = Math.fround(orig - step);
        data[j] = plus;
        const lp = loss(k, data);
        data[j] = minus;
        const lm = loss(k, data);
        data[j] = orig;
        nu.push((lp - lm) / (plus - minus));
        an.push(analytic[k][j]);
      }
      let diff2 = 0;
      let a2 = 0;
      let n2 = 0;
      let maxAbs = 0;
      let scale = 0;
      for (let i = 0; i < an.length; i++) {
        const d = an[i] - nu[i];
        diff2 += d * d;
        a2 += an[i] * an[i];
        n2 += nu[i] * nu[i];
        maxAbs = Math.max(maxAbs, Math.abs(d));
        scale = Math.max(scale, Math.abs(an[i]), Math.abs(nu[i]));
      }
      const denom = Math.sqrt(Math.max(a2, n2));
      return {
        checked: indices.length,
        relError: denom > 0 ? Math.sqrt(diff2) / denom : 0,
        maxEntryError: scale > 0 ? maxAbs / scale : 0,
        maxAbsError: maxAbs,
        analytic: an,
        numeric: nu,
        indices,
      };
    });
    return {
      relError: Math.max(0, ...reports.map((r) => r.relError)),
      maxEntryError: Math.max(0, ...reports.map((r) => r.maxEntryError)),
      inputs: reports,
    };
  } finally {
    wt.dispose();
  }
}

/** gradCheck that throws, naming the worst input and entry, when an error exceeds `tolerance` (default 1e-3). */
export function assertGradients(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  options: GradCheckOptions & { tolerance?: number; label?: string } = {},
): GradCheckResult {
  const tol = options.tolerance ?? 1e-3;
  const r = gradCheck(f, inputs, options);
  r.inputs.forEach((ri, k) => {
    if (ri.relError > tol || ri.maxEntryError > 2 * tol) {
      let worst = 0;
      for (let i = 1; i < ri.analytic.length; i++) {
        if (Math.abs(ri.analytic[i] - ri.numeric[i]) > Math.abs(ri.analytic[worst] - ri.numeric[worst])) worst = i;
      }
      throw new Error(
        `${options.label ?? 'gradient check'}: input ${k} relative error ${ri.relError.toExponential(2)} ` +
        `(entry error ${ri.maxEntryError.toExponential(2)}, tolerance ${tol}); worst entry ${ri.indices[worst]}: ` +
        `analytic ${ri.analytic[worst]}, numeric ${ri.numeric[worst]}`);
    }
  });
  return r;
}
