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
import { ContractError, ScoreMap } from '../contract';
import { flipScoreMap, resizeScoreMap, softmaxScoreMap } from '../ops/score-map';

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
export function fusionTarget(maps: readonly ScoreMap[], opts: FusionOptions = {}): { width: number; height: number; stride: number } {
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

export function validateFusionInput(maps: unknown, what = 'msg.payload'): ScoreMap[] {
  const list = Array.isArray(maps) ? maps : [maps];
  if (list.length === 0) throw new ContractError(`${what}: expected an array of ScoreMaps of one image, got an empty array`);
  list.forEach((m, i) => {
    const o = m as ScoreMap;
    if (!o || typeof o !== 'object' || !(o.data instanceof Float32Array) || !(o.width > 0) || !(o.height > 0) || !(o.classes > 0) ||
      o.data.length !== o.width * o.height * o.classes) {
      throw new ContractError(`${what}[${i}]: expected a ScoreMap {width, height, classes, data: Float32Array(width*height*classes), kind}, got ${o && typeof o === 'object' ? `keys [${Object.keys(o).join(', ')}]` : String(o)}`);
    }
  });
  const C = (list[0] as ScoreMap).classes;
  const bad = list.findIndex((m) => (m as ScoreMap).classes !== C);
  if (bad >= 0) throw new ContractError(`${what}: all maps must have the same classes; map 0 has ${C}, map ${bad} has ${(list[bad] as ScoreMap).classes}`);
  return list as ScoreMap[];
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

  const prepared = (m: ScoreMap): Float32Array => {
    let x = m.width === width && m.height === height ? m : resizeScoreMap(m, width, height, alignCorners);
    if (x.flipped) x = flipScoreMap(x);
    if (method === 'mean-probs') x = softmaxScoreMap({ ...x, kind: x.kind ?? 'logits' });
    return x.data;
  };

  let out: Float32Array;
  if (method === 'max') {
    out = Float32Array.from(prepared(maps[0]));
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
