/**
 * The project's one source of seeded randomness: a mulberry32 generator (Rng) and an integer
 * mixer. Tests, synthetic data, dataset shuffles, augmentation and training all draw from it, so
 * a seed means the same thing everywhere.
 *
 * Training draws are counter-based: every random draw is a pure function of the run's seed and a
 * position (epoch, sample counter, iteration), taken from a stream `Rng.at(seed, STREAM.x, k)`.
 * Prefetching data ahead of the compute then cannot change the sequence, and the whole "RNG
 * state" of a run is its seed and how many samples it has consumed, so a resume continues
 * exactly where the run stopped.
 */

/** A 32-bit avalanche mix of several integers (murmur3's finaliser applied in a chain). */
export function mix32(...values: number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    h = Math.imul(h ^ (v >>> 0), 0x01000193) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Purposes of the training streams, so streams for different things never coincide. */
export const STREAM = {
  order: 1,
  augment: 2,
  dropout: 3,
  synthetic: 4,
} as const;

/** Anything indexable and writable: arrays and typed arrays. */
interface Indexed {
  length: number;
  [i: number]: unknown;
}

/** mulberry32 stream with an inspectable, restorable 32-bit state. */
export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  /** A stream for a position: `Rng.at(seed, purpose, k)`. */
  static at(...key: number[]): Rng {
    return new Rng(mix32(...key));
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }

  /** Standard normal (Box-Muller, one value per call). */
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place (from the end, one draw per position); returns the list. */
  shuffle<L extends Indexed>(list: L): L {
    for (let i = list.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = list[i];
      list[i] = list[j];
      list[j] = t;
    }
    return list;
  }

  /** A seeded permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

/** A bare seeded uniform [0, 1) source: `seededRandom(s)()` draws the same values as `new Rng(s).next()`. */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}
