/**
 * The inner loops of lattice filtering, specialised at run time for the simplex size (d+1) and
 * the number of classes handled together. V8 does not vectorise or unroll loops over typed
 * arrays; with the vertex offsets/weights and the classes unrolled into straight-line code
 * (locals instead of reloads, no inner loop counters) the splat and slice run 2.5 to 4 times
 * faster than the generic loops (bench/crf.ts). The generated source only ever
 * interpolates small integers chosen here, never data.
 */

/** splat(n, offsets, weights, input, inStride, inOff, values, vStride, vOff) */
export type SplatFn = (n: number, offsets: Int32Array, weights: Float32Array, input: Float32Array, inStride: number, inOff: number,
  values: Float32Array, vStride: number, vOff: number) => void;
/** slice(n, offsets, weights, values, vStride, vOff, out, outStride, outOff, scale) */
export type SliceFn = (n: number, offsets: Int32Array, weights: Float32Array, values: Float32Array, vStride: number, vOff: number,
  out: Float32Array, outStride: number, outOff: number, scale: number) => void;
/** blur(chains, start, end, values, stride, off): one lattice direction, in place, along its chains. */
export type BlurFn = (chains: Int32Array, start: number, end: number, values: Float32Array, stride: number, off: number) => void;
/** blur(nb, base, m, src, dst, stride, off): one lattice direction from src to dst, rows 1..m, neighbour pairs in nb. */
export type BlurPairsFn = (nb: Int32Array, base: number, m: number, src: Float32Array, dst: Float32Array, stride: number, off: number) => void;

/** Classes per generated chunk: beyond this the straight-line code gets long for little gain. */
export const MAX_CHUNK = 24;

const splats = new Map<number, SplatFn>();
const slices = new Map<number, SliceFn>();
const blurs = new Map<number, BlurFn>();
const blurPairs = new Map<number, BlurPairsFn>();

function checkInt(v: number, lo: number, hi: number): number {
  if (!(Number.isInteger(v) && v >= lo && v <= hi)) throw new Error(`kernel size ${v} outside ${lo}..${hi}`);
  return v;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** values[row(p,k) * vStride + vOff + c] += w(p,k) * input[p * inStride + inOff + c], c < cw. */
export function splatKernel(d1: number, cw: number): SplatFn {
  checkInt(d1, 2, 64);
  checkInt(cw, 1, MAX_CHUNK);
  const key = d1 * 1000 + cw;
  let fn = splats.get(key);
  if (!fn) {
    const ks = range(d1);
    const body = [
      'for (let p = 0; p < n; p++) {',
      `  const e = p * ${d1}; const q = p * inStride + inOff;`,
      ...ks.map((k) => `  const o${k} = offsets[e + ${k}] * vStride + vOff, w${k} = weights[e + ${k}];`),
      ...range(cw).map((c) => `  { const a = input[q + ${c}]; ${ks.map((k) => `values[o${k} + ${c}] += w${k} * a;`).join(' ')} }`),
      '}',
    ].join('\n');
    fn = new Function('n', 'offsets', 'weights', 'input', 'inStride', 'inOff', 'values', 'vStride', 'vOff', body) as SplatFn;
    splats.set(key, fn);
  }
  return fn;
}

/** out[p * outStride + outOff + c] (+)= scale * sum_k w(p,k) * values[row(p,k) * vStride + vOff + c], c < cw. */
export function sliceKernel(d1: number, cw: number, accumulate: boolean): SliceFn {
  checkInt(d1, 2, 64);
  checkInt(cw, 1, MAX_CHUNK);
  const key = (d1 * 1000 + cw) * 2 + (accumulate ? 1 : 0);
  let fn = slices.get(key);
  if (!fn) {
    const ks = range(d1);
    const op = accumulate ? '+=' : '=';
    const body = [
      'for (let p = 0; p < n; p++) {',
      `  const e = p * ${d1}; const q = p * outStride + outOff;`,
      ...ks.map((k) => `  const o${k} = offsets[e + ${k}] * vStride + vOff, w${k} = weights[e + ${k}] * scale;`),
      ...range(cw).map((c) => `  out[q + ${c}] ${op} ${ks.map((k) => `w${k} * values[o${k} + ${c}]`).join(' + ')};`),
      '}',
    ].join('\n');
    fn = new Function('n', 'offsets', 'weights', 'values', 'vStride', 'vOff', 'out', 'outStride', 'outOff', 'scale', body) as SliceFn;
    slices.set(key, fn);
  }
  return fn;
}

/**
 * The [1 2 1]/2 blur along one lattice direction, v_i <- v_i + (v_prev + v_next) / 2, done in
 * place by walking each chain of neighbours (rows listed in order, each chain ended by 0) with
 * the previous row's old values kept in locals. Vertices without a neighbour along the
 * direction are in no chain and are not touched at all, which on sparse lattices (fine colour
 * kernels: half the neighbours absent) saves much of the memory traffic, and one buffer serves.
 */
export function blurKernel(cw: number): BlurFn {
  checkInt(cw, 1, MAX_CHUNK);
  let fn = blurs.get(cw);
  if (!fn) {
    const cs = range(cw);
    const body = [
      'let t = start;',
      'while (t < end) {',
      '  let v = chains[t++];',
      `  let ${cs.map((c) => `p${c} = 0`).join(', ')};`,
      '  while (v !== 0) {',
      '    const nx = chains[t++];',
      '    const o = v * stride + off, q = nx * stride + off;',
      ...cs.map((c) => `    { const cur = values[o + ${c}]; values[o + ${c}] = cur + 0.5 * (p${c} + values[q + ${c}]); p${c} = cur; }`),
      '    v = nx;',
      '  }',
      '}',
    ].join('\n');
    fn = new Function('chains', 'start', 'end', 'values', 'stride', 'off', body) as BlurFn;
    blurs.set(cw, fn);
  }
  return fn;
}

/**
 * The same blur from one buffer to another, row by row: dst_i = src_i + (src_n1 + src_n2) / 2.
 * Better where neighbours sit at regular distances in memory (position-only lattices: the
 * reads form a few sequential streams the hardware prefetches).
 */
export function blurPairsKernel(cw: number): BlurPairsFn {
  checkInt(cw, 1, MAX_CHUNK);
  let fn = blurPairs.get(cw);
  if (!fn) {
    const body = [
      'for (let i = 1; i <= m; i++) {',
      '  const j = base + 2 * i - 2;',
      '  const o = i * stride + off, a = nb[j] * stride + off, b = nb[j + 1] * stride + off;',
      ...range(cw).map((c) => `  dst[o + ${c}] = src[o + ${c}] + 0.5 * (src[a + ${c}] + src[b + ${c}]);`),
      '}',
    ].join('\n');
    fn = new Function('nb', 'base', 'm', 'src', 'dst', 'stride', 'off', body) as BlurPairsFn;
    blurPairs.set(cw, fn);
  }
  return fn;
}

const chunkCache = new Map<number, readonly { off: number; cw: number }[]>();

/** Splits ct classes into chunks of at most MAX_CHUNK, as even as possible (cached: no allocation per call). */
export function chunks(ct: number): readonly { off: number; cw: number }[] {
  const hit = chunkCache.get(ct);
  if (hit) return hit;
  const count = Math.max(1, Math.ceil(ct / MAX_CHUNK));
  const out: { off: number; cw: number }[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    const cw = Math.floor(ct / count) + (i < ct % count ? 1 : 0);
    out.push({ off, cw });
    off += cw;
  }
  chunkCache.set(ct, out);
  return out;
}
