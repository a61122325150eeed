/**
 * Renumbering the lattice's vertices by image position, once during the construction.
 *
 * The construction numbers vertices as points create them (raster order). In a lattice with
 * colour dimensions (the appearance kernel), a vertex's neighbours along the colour directions
 * were then created by pixels far apart in raster order, and the blur's chains walk all over a
 * value buffer of up to tens of megabytes (25-35 ns a step on a 760 k-vertex lattice: cache
 * misses). Here vertices are grouped by cells of the first two features (x and y in both CRF
 * kernels, cells one standard deviation wide), each vertex in the cell of the first point that
 * touches it, cells in raster order, the vertices of a cell in construction order, so that a
 * vertex's colour neighbours mostly lie in its own cell. Measured on VOC vainf_008 (DeepLab v2
 * preset, 760 k appearance vertices): that blur 7-12 % faster, the splat and slice a little,
 * for about 5 % more construction time. Finer cells measured slower.

 * Only the numbering changes: every value is splatted, blurred and sliced with the same
 * arithmetic in the same order, so the CRF's result is bit for bit the unsorted lattice's. The
 * order depends only on the offsets and the features, so the JavaScript and WebAssembly
 * constructions number alike.
 */

/** Vertices renumbered by position unless DEEPLAB_CRF_SORT_LATTICE=0 (the construction's order). */
export function sortLatticeByDefault(): boolean {
  return process.env.DEEPLAB_CRF_SORT_LATTICE !== '0';
}

/**
 * Position-only lattices (d = 2) are in raster order already: renumbered only where colour (or
 * other) dimensions follow the position.
 */
const SORTED_FROM_D = 3;
/**
 * Below this many vertices the renumbering costs about what it saves (measured on VOC photos,
 * 21 classes: 140 k vertices, a loss of 1-2 %; 290 k, even; 760 k, a gain): their value rows
 * (96 bytes each) mostly stay in cache anyway.
 */
export const SORTED_FROM_VERTICES = 500_000;
let sortedFrom = SORTED_FROM_VERTICES;

/** Sets the vertex count from which lattices are renumbered (tests lower it); returns the previous one. */
export function setSortThreshold(vertices: number): number {
  const prev = sortedFrom;
  sortedFrom = vertices;
  return prev;
}

/**
 * perm[rank] = vertex for the m vertices of n points (offsets: n x (d+1) rows, vertex + 1),
 * features n x d; undefined where not worth it (d < 3, fewer vertices than SORTED_FROM_VERTICES,
 * or cells far more than vertices: a degenerate feature range).
 */
export function positionOrder(offsets: Int32Array, features: Float32Array, n: number, d: number, m: number): Int32Array | undefined {
  if (d < SORTED_FROM_D || m < Math.max(2, sortedFrom)) return undefined;
  const d1 = d + 1;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let p = 0; p < n; p++) {
    const x = Math.floor(features[p * d]);
    const y = Math.floor(features[p * d + 1]);
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  const cw = x1 - x0 + 1;
  const cells = cw * (y1 - y0 + 1);
  if (!(cells <= 4 * m + 65536)) return undefined;
  // each vertex's cell: that of the first point touching it
  const cell = new Int32Array(m).fill(-1);
  for (let p = 0; p < n; p++) {
    const c = (Math.floor(features[p * d + 1]) - y0) * cw + (Math.floor(features[p * d]) - x0);
    for (let e = p * d1; e < (p + 1) * d1; e++) {
      const v = offsets[e] - 1;
      if (cell[v] < 0) cell[v] = c;
    }
  }
  // stable counting sort by cell
  const counts = new Int32Array(cells + 1);
  for (let v = 0; v < m; v++) counts[cell[v] + 1]++;
  for (let c = 0; c < cells; c++) counts[c + 1] += counts[c];
  const perm = new Int32Array(m);
  for (let v = 0; v < m; v++) perm[counts[cell[v]]++] = v;
  return perm;
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
