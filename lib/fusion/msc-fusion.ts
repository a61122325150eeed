/**
 * Multi-scale (and flip) fusion of the score maps of one image into one map.
 *
 * Each map is resized (bilinear) to a common base size, flipped maps are mirrored back, then:
 * - 'max': element-wise max (DeepLab v2's MSC: max over the scales' logits);
 * - 'mean-probs': softmax of each map, then the mean (DeepLab v3/v3+ multi-scale and flip
 *   inference: logits resized, softmax, averaged); the result is probabilities;
 * - 'mean-logits': mean of the logits.
 * Sums run in Float64 over the maps in a canonical order (scale, flip, size), so the result
 * does not depend on the order of the input array.
 */
import { ContractError, ScoreMap, expectScoreMap } from '../contract';
import { FLOAT_MAP_COPIES, resizeScoreMap, softmaxInPlace } from '../ops/score-map';
import { checkMemory, fitSize, formatBytes } from '../runtime/memory-budget';

/** Mirrors each row of an HWC array left-right, in place. */
function mirrorInPlace(d: Float32Array, W: number, H: number, C: number): void {
  const tmp = new Float32Array(C);
  for (let y = 0; y < H; y++) {
    for (let a = y * W, b = a + W - 1; a < b; a++, b--) {
      tmp.set(d.subarray(a * C, (a + 1) * C));
      d.copyWithin(a * C, b * C, (b + 1) * C);
      d.set(tmp, b * C);
    }
  }
}

export type FusionMethod = 'max' | 'mean-probs' | 'mean-logits';
export type FusionBase = 'scale1' | 'largest' | 'image';
export const FUSION_METHODS: readonly FusionMethod[] = ['max', 'mean-probs', 'mean-logits'];
export const FUSION_BASES: readonly FusionBase[] = ['scale1', 'largest', 'image'];

export interface FusionOptions {
  /** Default 'mean-probs' (DeepLab v3 / v3+ inference). */
  method?: FusionMethod;
  /**
   * 'scale1': the size of the scale-1 map (the largest map when none has scale 1);
   * 'largest': the map with the most cells; 'image': `width` x `height` (the original image).
   * Default 'scale1'.
   */
  base?: FusionBase;
  width?: number;
  height?: number;
  /** Bilinear resize with corners aligned (TF 1 DeepLab) or half-pixel centres (PyTorch); default false. */
  alignCorners?: boolean;
  /** The output size and stride decided beforehand (planFusion's cap under a memory budget); wins over `base`. */
  target?: FusionTarget;
}

export interface FusionTarget {
  width: number;
  height: number;
  /** Original-image pixels per output cell. */
  stride: number;
}

const scaleOf = (m: ScoreMap): number => (typeof m.scale === 'number' && m.scale > 0 ? m.scale : 1);

/** The canonical order: by scale, unflipped first, then by size; stable for equal keys. */
function canonical(maps: readonly ScoreMap[]): ScoreMap[] {
  return maps
    .map((m, i) => ({ m, i }))
    .sort((a, b) => scaleOf(a.m) - scaleOf(b.m) || Number(!!a.m.flipped) - Number(!!b.m.flipped) ||
      a.m.width * a.m.height - b.m.width * b.m.height || a.m.width - b.m.width || a.i - b.i)
    .map(({ m }) => m);
}

/** Checks the maps and picks the output size and stride (in original-image pixels per cell). */
export function fusionTarget(maps: readonly ScoreMap[], opts: FusionOptions = {}): FusionTarget {
  if (opts.target) return opts.target;
  const base = opts.base ?? 'scale1';
  if (base === 'image') {
    const { width, height } = opts;
    if (!(Number.isInteger(width) && Number.isInteger(height) && width! > 0 && height! > 0)) {
      throw new ContractError(`fusion to the image size needs the image's width and height (msg.image as a RawImage), got ${width}x${height}`);
    }
    return { width: width!, height: height!, stride: 1 };
  }
  const largest = maps.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
  const pick = base === 'scale1' ? (maps.find((m) => scaleOf(m) === 1 && !m.flipped) ?? maps.find((m) => scaleOf(m) === 1) ?? largest) : largest;
  return { width: pick.width, height: pick.height, stride: pick.stride / scaleOf(pick) };
}

/**
 * The maps of one image from a message: an array of ScoreMaps (or one), each read through the
 * contract (float32 Buffers or Float32Arrays of any realm; scores as Float32Array views, no copy).
 */
export function validateFusionInput(maps: unknown, what = 'msg.payload'): ScoreMap[] {
  const list = Array.isArray(maps) ? maps : [maps];
  if (list.length === 0) throw new ContractError(`${what}: expected an array of ScoreMaps of one image, got an empty array`);
  const read = list.map((m, i) => expectScoreMap(m, Array.isArray(maps) ? `${what}[${i}]` : what));
  const C = read[0].classes;
  const bad = read.findIndex((m) => m.classes !== C);
  if (bad >= 0) throw new ContractError(`${what}: all maps must have the same classes; map 0 has ${C}, map ${bad} has ${read[bad].classes}`);
  return read;
}

/** Fuses the score maps of one image (several scales, flipped copies) into one map. */
export function fuseScoreMaps(input: readonly ScoreMap[], opts: FusionOptions = {}): ScoreMap {
  const method = opts.method ?? 'mean-probs';
  if (!FUSION_METHODS.includes(method)) throw new ContractError(`unknown fusion method "${method}": expected one of ${FUSION_METHODS.join(', ')}`);
  const maps = canonical(validateFusionInput(input));
  const kinds = new Set(maps.map((m) => m.kind ?? 'logits'));
  if (method !== 'mean-probs' && kinds.size > 1) {
    throw new ContractError(`cannot ${method === 'max' ? 'take the max of' : 'average'} logits and probabilities together; use mean-probs or send maps of one kind`);
  }
  if (method === 'mean-logits' && kinds.has('probs')) throw new ContractError('mean-logits needs logits but the maps are probabilities; use mean-probs');
  const { width, height, stride } = fusionTarget(maps, opts);
  const alignCorners = opts.alignCorners ?? false;
  const C = maps[0].classes;
  const n = width * height * C;

  // Each map becomes one array at the output size: resized (a new array) or copied once, then
  // mirrored and softmaxed in place, so a map costs one output-sized array at a time.
  const prepared = (m: ScoreMap): Float32Array => {
    const same = m.width === width && m.height === height;
    const d = same ? Float32Array.from(m.data) : resizeScoreMap(m, width, height, alignCorners).data;
    if (m.flipped) mirrorInPlace(d, width, height, C);
    if (method === 'mean-probs' && (m.kind ?? 'logits') !== 'probs') softmaxInPlace(d, C);
    return d;
  };

  let out: Float32Array;
  if (method === 'max') {
    out = prepared(maps[0]);
    for (let k = 1; k < maps.length; k++) {
      const d = prepared(maps[k]);
      for (let i = 0; i < n; i++) if (d[i] > out[i]) out[i] = d[i];
    }
  } else {
    const acc = new Float64Array(n);
    for (const m of maps) {
      const d = prepared(m);
      for (let i = 0; i < n; i++) acc[i] += d[i];
    }
    out = new Float32Array(n);
    const inv = 1 / maps.length;
    for (let i = 0; i < n; i++) out[i] = acc[i] * inv;
  }
  const kind = method === 'mean-probs' ? 'probs' : (maps[0].kind ?? 'logits');
  return { width, height, classes: C, data: out, kind, stride };
}

/**
 * Output cells x classes x maps above which the node runs fusion in a worker: mean-probs at
 * 65x65x21 x 6 maps (~530k) took 13-20 ms here, 6 maps at 513x513x21 ~650 ms (bench/metrics.ts);
 * below ~250k it stays under ~10 ms, cheaper than a round trip through a worker.
 */
export const FUSION_INLINE_LIMIT = 250_000;

/** Work estimate of a fusion: output cells x number of maps. */
export function fusionWork(maps: readonly ScoreMap[], opts: FusionOptions = {}): number {
  const t = fusionTarget(maps, opts);
  return t.width * t.height * maps[0].classes * maps.length;
}

/**
 * Bytes a fusion takes per output cell: one prepared map (4 bytes a class), the Float64 sum
 * (8 bytes a class) for the means, and the output, counted twice as every float map on a wire is
 * (FLOAT_MAP_COPIES: the map and the next stage's copy in its worker).
 */
export function fusionBytesPerCell(classes: number, method: FusionMethod = 'mean-probs'): number {
  return classes * (4 + (method === 'max' ? 0 : 8) + 4 * FLOAT_MAP_COPIES);
}

export interface FusionPlan {
  target: FusionTarget;
  /** Bytes: the copies of the input maps sent to the worker and the fusion's own arrays. */
  need: number;
  /** The size the options asked for, when the budget made the output smaller. */
  cappedFrom?: { width: number; height: number };
}

/**
 * Plans a fusion against a memory budget (bytes): at the size the options ask for where it fits,
 * else at the largest size of the same aspect that does (the stride grows to match); refused when
 * not even the input maps fit.
 */
export function planFusion(maps: readonly ScoreMap[], opts: FusionOptions, budget: number): FusionPlan {
  const want = fusionTarget(maps, opts);
  const inputs = maps.reduce((n, m) => n + m.width * m.height * m.classes * 4, 0);
  const perCell = fusionBytesPerCell(maps[0].classes, opts.method);
  const size = fitSize(want.width, want.height, perCell, inputs, budget);
  if (!size) {
    checkMemory(inputs + perCell * want.width * want.height, budget, `fusing ${maps.length} maps at ${want.width}x${want.height}x${maps[0].classes}`,
      `the input maps alone take ${formatBytes(inputs)}: raise the node's memory budget`);
  }
  const s = size!;
  if (s.width === want.width && s.height === want.height) return { target: want, need: inputs + perCell * s.width * s.height };
  return {
    target: { width: s.width, height: s.height, stride: (want.stride * want.width) / s.width },
    need: inputs + perCell * s.width * s.height,
    cappedFrom: { width: want.width, height: want.height },
  };
}
