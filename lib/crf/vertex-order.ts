/**
 * Renumbering the lattice's vertices by position, once after the construction.
 *
 * The construction numbers vertices as points create them (raster order), so a vertex's
 * neighbours along the colour directions were created by pixels anywhere in the image, and the
 * blur walks all over a value buffer of up to tens of megabytes. Here vertices are grouped by
 * their position in the image plane, projected out of the lattice coordinates c (c_d = -sum):
 * with the features' first two dimensions x and y (both CRF kernels), Ly = c0 + c1 - 2 c2 is y's
 * multiple and Lx = c0 - c1 x's, whatever the other features. Vertices of one (Ly, Lx) cell
 * stay in the construction's order. A neighbour along any direction is then in the same cell or
 * one next to it: the blur's reads stay within a few cells, which fit in cache, and the splat
 * and slice, visiting pixels in raster order, sweep the cells row of cells by row of cells.
 *
 * Only the numbering changes: every value is splatted, blurred and sliced with the same
 * arithmetic in the same order, so the CRF's result is bit for bit the unsorted lattice's.
 */

/** Vertices renumbered by position unless DEEPLAB_CRF_SORT_LATTICE=0 (the construction's order). */
export function sortLatticeByDefault(): boolean {
  return process.env.DEEPLAB_CRF_SORT_LATTICE !== '0';
}

/** A stable counting-sort pass of `from` (vertex indices) into `to` by digit[v] in 0..range-1. */
function countingPass(from: Int32Array, to: Int32Array, digit: Int32Array, range: number): void {
  const counts = new Int32Array(range + 1);
  const m = from.length;
  for (let i = 0; i < m; i++) counts[digit[from[i]] + 1]++;
  for (let r = 0; r < range; r++) counts[r + 1] += counts[r];
  for (let i = 0; i < m; i++) {
    const v = from[i];
    to[counts[digit[v]]++] = v;
  }
}

/** Subtracts the minimum in place; returns the range (max - min + 1). */
function shiftToZero(a: Int32Array): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    if (a[i] < lo) lo = a[i];
    if (a[i] > hi) hi = a[i];
  }
  for (let i = 0; i < a.length; i++) a[i] -= lo;
  return a.length ? hi - lo + 1 : 0;
}

/**
 * perm[rank] = vertex: stable by (ly, lx) (both overwritten); undefined where a range is far
 * above the vertex count (a degenerate feature range: not worth the counting arrays).
 */
export function cellOrder(ly: Int32Array, lx: Int32Array): Int32Array | undefined {
  const m = ly.length;
  const rx = shiftToZero(lx);
  const ry = shiftToZero(ly);
  const limit = 4 * m + 65536;
  if (!(rx <= limit && ry <= limit)) return undefined;
  let a = new Int32Array(m);
  for (let i = 0; i < m; i++) a[i] = i;
  let b = new Int32Array(m);
  countingPass(a, b, lx, rx);
  [a, b] = [b, a];
  countingPass(a, b, ly, ry);
  return b;
}

/** Ly and Lx of coordinates c0, c1, c2 (c2 = -(c0 + c1) where d = 2). */
function project(c0: number, c1: number, c2: number, v: number, ly: Int32Array, lx: Int32Array): void {
  ly[v] = c0 + c1 - 2 * c2;
  lx[v] = c0 - c1;
}

/** The order for keys held as tuples (d coordinates a vertex, as lattice.ts keeps them); undefined where d < 2. */
export function orderTuples(keys: Int32Array, d: number, m: number): Int32Array | undefined {
  if (d < 2) return undefined;
  const ly = new Int32Array(m);
  const lx = new Int32Array(m);
  for (let v = 0; v < m; v++) {
    const c0 = keys[v * d];
    const c1 = keys[v * d + 1];
    project(c0, c1, d > 2 ? keys[v * d + 2] : -(c0 + c1), v, ly, lx);
  }
  return cellOrder(ly, lx);
}

/**
 * The order for packed keys (lattice-wasm.ts: key = k + (d+1) sum_i (a_i - amin_i) stride_i,
 * c_i = k + (d+1) a_i; little-endian 64-bit, words 2v and 2v + 1). Undefined where d < 2 or a
 * key may pass 2^50 (decoded in doubles, exact below that).
 */
export function orderPacked(words: Uint32Array, m: number, d: number, amin: number[], stride: number[], space: number): Int32Array | undefined {
  if (d < 2 || !(space < 2 ** 50)) return undefined;
  const d1 = d + 1;
  const ly = new Int32Array(m);
  const lx = new Int32Array(m);
  const parts = Math.min(d, 3);
  const c = [0, 0, 0];
  for (let v = 0; v < m; v++) {
    const key = words[2 * v] + words[2 * v + 1] * 4294967296;
    const q = Math.floor(key / d1);
    const k = key - q * d1;
    for (let i = 0; i < parts; i++) {
      const upper = i + 1 < d ? stride[i + 1] : Infinity;
      const ai = Math.floor((q % upper) / stride[i]);
      c[i] = k + d1 * (ai + amin[i]);
    }
    project(c[0], c[1], d > 2 ? c[2] : -(c[0] + c[1]), v, ly, lx);
  }
  return cellOrder(ly, lx);
}

/** rank[vertex] for perm[rank] = vertex. */
export function ranksOf(perm: Int32Array): Int32Array {
  const rank = new Int32Array(perm.length);
  for (let r = 0; r < perm.length; r++) rank[perm[r]] = r;
  return rank;
}

/** Point-to-vertex rows (vertex + 1) renumbered in place: row v + 1 becomes rank[v] + 1. */
export function renumberRows(offsets: Int32Array, rank: Int32Array): void {
  for (let e = 0; e < offsets.length; e++) offsets[e] = rank[offsets[e] - 1] + 1;
}
