/**
 * Permutohedral lattice (Adams, Baek & Davis, "Fast High-Dimensional Filtering Using the
 * Permutohedral Lattice", 2010): Gaussian filtering in a d-dimensional feature space in time
 * linear in the number of points. Each point is splatted onto the d+1 vertices of the lattice
 * simplex that encloses it (barycentric weights), the lattice values are blurred with a
 * [1 2 1]/2 kernel along each of the d+1 lattice directions, and sliced back with the same
 * weights.
 *
 * The lattice geometry depends only on the features, so it is built once per image and reused
 * for every mean-field iteration and every class. Storage is flat typed arrays, so a geometry
 * passes to the CRF's helper thread or into WebAssembly memory as it is, and the filter loops
 * allocate nothing.
 *
 * Scaling: features are in units of the kernel's standard deviation (position / theta), and
 * the lattice scale is the one Krähenbühl's reference densecrf uses, so parameters tuned on
 * that implementation mean the same here. The result approximates exp(-|fi - fj|^2 / 2) up to
 * a global factor (which the CRF's symmetric normalisation cancels).
 */

import { blurKernel, blurPairsKernel, chunks, sliceKernel, splatKernel } from './kernels';

/** The geometry of a lattice built from n points in d dimensions. */
export interface LatticeGeometry {
  /** Feature dimensions. */
  d: number;
  /** Points (pixels). */
  n: number;
  /** Lattice vertices in use; their value rows are 1..m (row 0 is an always-zero row for missing neighbours). */
  m: number;
  /** n * (d+1): the value row of each point's simplex vertices. */
  offsets: Int32Array;
  /** n * (d+1): the barycentric weight of each vertex (may be rescaled per point, see scaleWeights). */
  weights: Float32Array;
  /**
   * The blur's neighbour chains: for each direction j, entries chainStart[j]..chainStart[j+1] of
   * `chains` list rows along the direction, consecutive rows being neighbours, each chain ended
   * by a 0. Vertices with no neighbour along j appear in no chain.
   */
  chains: Int32Array;
  chainStart: Int32Array;
  /**
   * Set instead of chains where neighbours lie at regular distances in memory: (d+1) * m * 2,
   * for direction j and vertex i (row i+1) its two neighbour rows along j (0 where absent).
   */
  pairs?: Int32Array;
  /**
   * Set where the arrays are views on a WebAssembly memory (built in place into the CRF's arena,
   * lattice-wasm.ts): their byte addresses there, so the SIMD plan uses them without a copy.
   */
  placed?: { memory: WebAssembly.Memory; offsets: number; weights: number; chains: number; pairs: number };
}

function nextPow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

/**
 * Open-addressing hash map from integer lattice keys (d coordinates; the (d+1)-th is implied by
 * the zero sum) to dense vertex indices 0..m-1. With hundreds of thousands of vertices the
 * lookups are bound by memory latency: slots are 8 bytes (vertex + 1, full hash) so the table
 * stays small, and the keys themselves (kept densely by vertex) are compared only when the
 * hashes agree. Measured 10-25 % faster than keys inline in 24-byte slots, same lattice.
 */
class KeyTable {
  /** Per slot: vertex + 1 (0 = empty) and the key's full 32-bit hash. */
  private slots: Int32Array;
  private mask: number;
  /** Keys by vertex index (d per vertex). */
  keys: Int32Array;
  size = 0;
  /** Hashes of the last touched batch, reused by find/findOrInsert (argument i). */
  readonly hb: Int32Array;

  constructor(
    private readonly d: number,
    expected: number,
  ) {
    const cap = nextPow2(Math.max(64, expected * 2));
    this.slots = new Int32Array(cap * 2);
    this.mask = cap - 1;
    this.keys = new Int32Array(Math.max(16, expected) * d);
    this.hb = new Int32Array(64);
  }

  hash(key: Int32Array, at: number): number {
    let h = 0x811c9dc5 | 0;
    for (let k = 0; k < this.d; k++) h = Math.imul(h ^ key[at + k], 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    return h ^ (h >>> 12);
  }

  /** The slot holding the key, or the empty slot where it would go; keys compared only on equal hashes. */
  private probe(key: Int32Array, at: number, h: number): number {
    const { slots, mask, d, keys } = this;
    let slot = h & mask;
    for (;;) {
      const v = slots[slot * 2];
      if (v === 0) return slot;
      if (slots[slot * 2 + 1] === h) {
        const b = (v - 1) * d;
        let same = true;
        for (let k = 0; k < d; k++) {
          if (keys[b + k] !== key[at + k]) {
            same = false;
            break;
          }
        }
        if (same) return slot;
      }
      slot = (slot + 1) & mask;
    }
  }

  /**
   * Hashes `count` keys (stored `d` apart in `batch`) and reads each home slot so that their
   * cache misses overlap (independent loads) before the probes that depend on them.
   */
  touch(batch: Int32Array, count: number): number {
    let acc = 0;
    for (let i = 0; i < count; i++) {
      const h = this.hash(batch, i * this.d);
      this.hb[i] = h;
      acc |= this.slots[(h & this.mask) * 2];
    }
    return acc;
  }

  /** Index of the key, or -1 (i: its position in the last touched batch, to reuse the hash). */
  find(key: Int32Array, at = 0, i = -1): number {
    const h = i >= 0 ? this.hb[i] : this.hash(key, at);
    return this.slots[this.probe(key, at, h) * 2] - 1;
  }

  /** Index of the key, inserted when absent. */
  findOrInsert(key: Int32Array, at = 0, i = -1): number {
    const h = i >= 0 ? this.hb[i] : this.hash(key, at);
    const slot = this.probe(key, at, h);
    const found = this.slots[slot * 2];
    if (found !== 0) return found - 1;
    const idx = this.size++;
    const d = this.d;
    if (this.size * d > this.keys.length) {
      const grown = new Int32Array(this.keys.length * 2);
      grown.set(this.keys);
      this.keys = grown;
    }
    for (let k = 0; k < d; k++) this.keys[idx * d + k] = key[at + k];
    this.slots[slot * 2] = idx + 1;
    this.slots[slot * 2 + 1] = h;
    if (this.size * 2 > this.mask + 1) this.grow();
    return idx;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const old = this.slots;
    this.slots = new Int32Array(cap * 2);
    this.mask = cap - 1;
    for (let s = 0; s < old.length; s += 2) {
      if (old[s] === 0) continue;
      let slot = old[s + 1] & this.mask;
      while (this.slots[slot * 2] !== 0) slot = (slot + 1) & this.mask;
      this.slots[slot * 2] = old[s];
      this.slots[slot * 2 + 1] = old[s + 1];
    }
  }
}

type SimplexFn = (features: Float32Array, n: number, offsets: Int32Array, weights: Float32Array, table: KeyTable,
  keyBatch: Int32Array, bary: Float64Array) => number;

const simplexKernels = new Map<number, SimplexFn>();

/**
 * The per-point part of the construction, generated for d with every loop over coordinates
 * unrolled into locals (about twice as fast as loops over small typed arrays here). For each
 * point: elevate into the hyperplane sum(x) = 0 of R^(d+1), scaled so that the lattice's blur
 * matches a unit Gaussian the way the reference implementation scales it; find the nearest
 * remainder-0 lattice point (coordinates multiples of d+1) coordinate-wise; rank the residuals
 * (0 = largest) and move the point back onto the plane; take the barycentric weights within
 * the enclosing simplex; look its d+1 vertices up (inserting new ones). Neighbouring points
 * often fall in the same simplex (flat regions, coarse kernels): their vertices are then the
 * previous point's and need no lookups. Divisions by d+1 are multiplications by its reciprocal
 * (as the reference's SSE code does; the rounding choice does not depend on the last bit).
 */
function simplexKernel(d: number): SimplexFn {
  let fn = simplexKernels.get(d);
  if (fn) return fn;
  if (!(Number.isInteger(d) && d >= 1 && d <= 32)) throw new Error(`lattice dimension ${d} outside 1..32`);
  const d1 = d + 1;
  const invStd = Math.sqrt(2 / 3) * d1;
  const I = Array.from({ length: d1 }, (_, i) => i);
  const L: string[] = [];
  L.push('let sink = 0, prev = -1;');
  L.push(`let ${I.map((i) => `pr${i} = 0, pk${i} = 0`).join(', ')};`);
  L.push('for (let p = 0; p < n; p++) {');
  L.push(`  const f = p * ${d};`);
  L.push('  let sm = 0, cf = 0;');
  for (let i = d; i > 0; i--) {
    const scale = invStd / Math.sqrt(i * (i + 1)); // scale of feature i-1
    L.push(`  cf = features[f + ${i - 1}] * ${scale}; const e${i} = sm - ${i} * cf; sm += cf;`);
  }
  L.push('  const e0 = sm;');
  L.push('  let sum = 0;');
  for (const i of I) {
    L.push(`  let r${i}; { const v = e${i} * ${1 / d1}; const up = Math.ceil(v) * ${d1}; const dn = Math.floor(v) * ${d1}; ` +
      `r${i} = up - e${i} < e${i} - dn ? up : dn; sum += r${i}; }`);
  }
  L.push(`  sum /= ${d1};`);
  L.push(`  let ${I.map((i) => `k${i} = 0`).join(', ')};`);
  for (let i = 0; i < d; i++) {
    L.push(`  { const di = e${i} - r${i};`);
    for (let j = i + 1; j <= d; j++) L.push(`    if (di < e${j} - r${j}) k${i}++; else k${j}++;`);
    L.push('  }');
  }
  L.push('  if (sum > 0) {');
  for (const i of I) L.push(`    if (k${i} >= ${d1} - sum) { r${i} -= ${d1}; k${i} += sum - ${d1}; } else k${i} += sum;`);
  L.push('  } else if (sum < 0) {');
  for (const i of I) L.push(`    if (k${i} < -sum) { r${i} += ${d1}; k${i} += ${d1} + sum; } else k${i} += sum;`);
  L.push('  }');
  L.push(`  ${Array.from({ length: d + 2 }, (_, t) => `bary[${t}] = 0;`).join(' ')}`);
  for (const i of I) L.push(`  { const v = (e${i} - r${i}) * ${1 / d1}; bary[${d} - k${i}] += v; bary[${d1} - k${i}] -= v; }`);
  L.push(`  bary[0] += 1 + bary[${d1}];`);
  L.push(`  const o = p * ${d1};`);
  L.push(`  ${I.map((k) => `weights[o + ${k}] = bary[${k}];`).join(' ')}`);
  L.push(`  if (prev >= 0 && ${I.map((i) => `r${i} === pr${i} && k${i} === pk${i}`).join(' && ')}) {`);
  L.push(`    const q = prev * ${d1}; ${I.map((k) => `offsets[o + ${k}] = offsets[q + ${k}];`).join(' ')}`);
  L.push('    prev = p;');
  L.push('    continue;');
  L.push('  }');
  L.push(`  prev = p; ${I.map((i) => `pr${i} = r${i}; pk${i} = k${i};`).join(' ')}`);
  // Vertex k: coordinate i is r_i + k, less d+1 where the rank exceeds d - k.
  for (const k of I) {
    L.push(`  ${Array.from({ length: d }, (_, i) => `keyBatch[${k * d + i}] = r${i} + (k${i} > ${d - k} ? ${k - d1} : ${k});`).join(' ')}`);
  }
  L.push(`  sink |= table.touch(keyBatch, ${d1});`);
  L.push(`  ${I.map((k) => `offsets[o + ${k}] = table.findOrInsert(keyBatch, ${k * d}, ${k}) + 1;`).join(' ')}`);
  L.push('}');
  L.push('return sink;');
  fn = new Function('features', 'n', 'offsets', 'weights', 'table', 'keyBatch', 'bary', L.join('\n')) as SimplexFn;
  simplexKernels.set(d, fn);
  return fn;
}

/**
 * Builds the lattice for n points with d features each (features[p * d + i], already divided
 * by the kernel's standard deviation).
 */
export function buildLattice(features: Float32Array, n: number, d: number): LatticeGeometry {
  if (!(d >= 1) || features.length < n * d) throw new Error(`lattice needs ${n}x${d} features, got ${features.length}`);
  const d1 = d + 1;
  const offsets = new Int32Array(n * d1);
  const weights = new Float32Array(n * d1);

  const bary = new Float64Array(d + 2);
  const keyBatch = new Int32Array(d * d1);
  const table = new KeyTable(d, n);
  let sink = simplexKernel(d)(features, n, offsets, weights, table, keyBatch, bary);

  // Neighbours of every vertex along each lattice direction j: n1 = key - (1,..,1) with the j-th
  // coordinate moved +d instead (for j = d only the implied coordinate moves), n2 the mirror.
  // n2 of vertex k is i exactly when n1 of i is k, so one lookup fills both.
  const m = table.size;
  const keys = table.keys;
  const blur = new Int32Array(d1 * m * 2);
  const nk = new Int32Array(d * d1);
  for (let i = 0; i < m; i++) {
    const kb = i * d;
    for (let j = 0; j <= d; j++) {
      const o = j * d;
      for (let k = 0; k < d; k++) nk[o + k] = keys[kb + k] - 1;
      if (j < d) nk[o + j] = keys[kb + j] + d;
    }
    sink |= table.touch(nk, d1);
    for (let j = 0; j <= d; j++) {
      const found = table.find(nk, j * d, j);
      if (found >= 0) {
        const base = j * m * 2;
        blur[base + 2 * i] = found + 1;
        blur[base + 2 * found + 1] = i + 1;
      }
    }
  }
  if (sink === -2) throw new Error('unreachable'); // keeps the touching loads alive

  // Regular lattices (position-only features) blur faster row by row from one buffer to another:
  // their neighbours are a near-constant distance apart, so the reads are sequential streams.
  // Irregular ones (colour features) blur faster in place along chains (one random read per
  // vertex instead of two, and half the memory). Same arithmetic either way.
  let near = 0;
  let steps = 0;
  for (let e = 0; e < blur.length; e += 2) {
    const i = (e >> 1) % m;
    if (blur[e + 1] !== 0) {
      steps++;
      if (Math.abs(blur[e + 1] - 1 - i) <= 4096) near++;
    }
  }
  if (near > 0.9 * steps) {
    const pairs = new Int32Array(blur.length);
    pairs.set(blur);
    return { d, n, m, offsets, weights, chains: new Int32Array(0), chainStart: new Int32Array(d1 + 1), pairs };
  }

  // Chains along each direction: start at a vertex with a next but no previous neighbour.
  const chainStart = new Int32Array(d1 + 1);
  let total = 0;
  for (let j = 0; j <= d; j++) {
    const base = j * m * 2;
    for (let i = 0; i < m; i++) {
      if (blur[base + 2 * i + 1] !== 0) total++; // a vertex with a next neighbour
      if (blur[base + 2 * i] === 0 && blur[base + 2 * i + 1] !== 0) total += 2; // its chain's start and end marker
    }
  }
  const chains = new Int32Array(total);
  let t = 0;
  for (let j = 0; j <= d; j++) {
    chainStart[j] = t;
    const base = j * m * 2;
    for (let i = 0; i < m; i++) {
      if (blur[base + 2 * i] !== 0 || blur[base + 2 * i + 1] === 0) continue;
      let v = i + 1;
      while (v !== 0) {
        chains[t++] = v;
        v = blur[base + 2 * (v - 1) + 1];
      }
      chains[t++] = 0;
    }
  }
  chainStart[d1] = t;
  return { d, n, m, offsets, weights, chains, chainStart };
}

/** Scratch value rows for filtering `channels` values per point (row 0 stays zero). */
export interface LatticeScratch {
  values: Float32Array;
  /** The second buffer, for lattices blurred by pairs. */
  spare?: Float32Array;
  channels: number;
}

export function latticeScratch(g: LatticeGeometry, channels: number): LatticeScratch {
  const rows = (g.m + 1) * channels;
  return { values: new Float32Array(rows), spare: g.pairs ? new Float32Array(rows) : undefined, channels };
}

/**
 * Filters channels [c0, c0 + ct) of `input` (n points x `stride` values) through the lattice:
 * out[p * ct + c] = scale * sum_j K(p, j) w_p w_j input[j * stride + c0 + c], where w are the
 * geometry's (possibly rescaled) weights, and adds to `out` instead of writing when accumulate.
 * Allocates nothing: the value rows live in the scratch.
 */
export function latticeFilter(
  g: LatticeGeometry,
  s: LatticeScratch,
  input: Float32Array,
  stride: number,
  c0: number,
  ct: number,
  out: Float32Array,
  scale: number,
  accumulate: boolean,
): void {
  if (s.channels < ct) throw new Error('lattice scratch too small');
  const { d, n, m, offsets, weights, chains, chainStart } = g;
  const d1 = d + 1;
  let values = s.values;
  values.fill(0, 0, (m + 1) * ct);
  const parts = chunks(ct);
  for (const { off, cw } of parts) splatKernel(d1, cw)(n, offsets, weights, input, stride, c0 + off, values, ct, off);
  if (g.pairs) {
    let dst = s.spare!;
    dst.fill(0, 0, ct);
    for (let j = 0; j <= d; j++) {
      for (const { off, cw } of parts) blurPairsKernel(cw)(g.pairs, j * m * 2, m, values, dst, ct, off);
      const t = values;
      values = dst;
      dst = t;
    }
  } else {
    for (let j = 0; j <= d; j++) {
      for (const { off, cw } of parts) blurKernel(cw)(chains, chainStart[j], chainStart[j + 1], values, ct, off);
    }
  }
  for (const { off, cw } of parts) sliceKernel(d1, cw, accumulate)(n, offsets, weights, values, ct, off, out, ct, off, scale);
}
