/**
 * Randomness of a training run, counter-based: every random draw is a pure function of the
 * run's seed and a position (epoch, sample counter, iteration). Prefetching data ahead of the
 * compute then cannot change the sequence, and the whole "RNG state" of a run is its seed and
 * how many samples it has consumed, so a resume continues exactly where the run stopped.
 */

export { mix32, Rng } from '../runtime/random';
import { Rng } from '../runtime/random';

/** Purposes, so streams for different things never coincide. */
export const STREAM = {
  order: 1,
  augment: 2,
  dropout: 3,
  synthetic: 4,
} as const;

/** A seeded permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

