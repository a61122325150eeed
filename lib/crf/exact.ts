/**
 * Exact Gaussian filtering by brute force, O(n^2): the reference the lattice approximates.
 * For tests and validation on small images only.
 */

/**
 * out[p * ct + c] (+)= scale * sum_j exp(-|f_p - f_j|^2 / 2) w_p w_j input[j * stride + c0 + c]
 * (the same contract as latticeFilter; w are per-point weights, all ones when omitted).
 */
export function exactFilter(
  features: Float32Array,
  n: number,
  d: number,
  input: Float32Array,
  stride: number,
  c0: number,
  ct: number,
  out: Float32Array,
  scale: number,
  accumulate: boolean,
  w?: Float64Array,
): void {
  const acc = new Float64Array(ct);
  for (let p = 0; p < n; p++) {
    acc.fill(0);
    for (let j = 0; j < n; j++) {
      let dist = 0;
      for (let i = 0; i < d; i++) {
        const t = features[p * d + i] - features[j * d + i];
        dist += t * t;
      }
      const k = Math.exp(-0.5 * dist) * (w ? w[j] : 1);
      const q = j * stride + c0;
      for (let c = 0; c < ct; c++) acc[c] += k * input[q + c];
    }
    const f = scale * (w ? w[p] : 1);
    for (let c = 0; c < ct; c++) out[p * ct + c] = (accumulate ? out[p * ct + c] : 0) + f * acc[c];
  }
}
