/**
 * Plain typed-array operations on ScoreMaps (HWC Float32Array): bilinear resize, flip,
 * softmax, argmax. They run on any thread without tfjs and allocate only their output.
 */
import { LabelMap, ScoreMap } from '../contract';
import { checkMemory, fitSize } from '../runtime/memory-budget';

/**
 * Source coordinate of output index i when resizing n -> m samples.
 * alignCorners: the corner samples coincide (TF 1 / DeepLab's own code, sizes like 65 -> 513).
 * Otherwise half-pixel centres (PyTorch align_corners=False, torchvision's DeepLab heads).
 */
export function sourceCoords(n: number, m: number, alignCorners: boolean): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
  const i0 = new Int32Array(m);
  const i1 = new Int32Array(m);
  const f = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    let s: number;
    if (alignCorners) s = m > 1 ? (i * (n - 1)) / (m - 1) : 0;
    else s = Math.max(0, (i + 0.5) * (n / m) - 0.5);
    const a = Math.min(Math.floor(s), n - 1);
    i0[i] = a;
    i1[i] = Math.min(a + 1, n - 1);
    f[i] = s - a;
  }
  return { i0, i1, f };
}

function checkResizeTarget(width: number, height: number): void {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`resize target must be positive integers, got ${width}x${height}`);
  }
}

/**
 * Bilinear interpolation of an HWC array with C channels (W x H) to width x height, as float32:
 * the one resampler of score maps and of pictures (see image-resize's bilinearRgb).
 */
export function bilinearChannels(
  src: ArrayLike<number>, W: number, H: number, C: number, width: number, height: number, alignCorners: boolean,
): Float32Array {
  checkResizeTarget(width, height);
  const out = new Float32Array(width * height * C);
  const xs = sourceCoords(W, width, alignCorners);
  const ys = sourceCoords(H, height, alignCorners);
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y] * W;
    const r1 = ys.i1[y] * W;
    const fy = ys.f[y];
    for (let x = 0; x < width; x++) {
      const fx = xs.f[x];
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const p00 = (r0 + xs.i0[x]) * C;
      const p01 = (r0 + xs.i1[x]) * C;
      const p10 = (r1 + xs.i0[x]) * C;
      const p11 = (r1 + xs.i1[x]) * C;
      const o = (y * width + x) * C;
      for (let c = 0; c < C; c++) {
        out[o + c] = w00 * src[p00 + c] + w01 * src[p01 + c] + w10 * src[p10 + c] + w11 * src[p11 + c];
      }
    }
  }
  return out;
}

/** Bilinear interpolation of every class channel to width x height. */
export function resizeScoreMap(map: ScoreMap, width: number, height: number, alignCorners: boolean): ScoreMap {
  const out = bilinearChannels(map.data, map.width, map.height, map.classes, width, height, alignCorners);
  // Stride is in input pixels per cell; resizing by a factor divides it.
  const stride = map.stride * (map.width / width);
  return { ...map, width, height, data: out, stride };
}

/** Mirror left-right (undoes a flipped inference). */
export function flipScoreMap(map: ScoreMap): ScoreMap {
  const { width: W, height: H, classes: C, data } = map;
  const out = new Float32Array(data.length);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      out.set(data.subarray((y * W + x) * C, (y * W + x + 1) * C), (y * W + (W - 1 - x)) * C);
    }
  }
  return { ...map, data: out, flipped: !map.flipped };
}

/** Per-pixel softmax of C-class scores in place (numerically stable). */
export function softmaxInPlace(data: Float32Array, C: number): void {
  for (let p = 0; p < data.length; p += C) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) if (data[p + c] > max) max = data[p + c];
    let sum = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(data[p + c] - max);
      data[p + c] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let c = 0; c < C; c++) data[p + c] *= inv;
  }
}

/** Per-pixel softmax over classes (numerically stable); probabilities in, probabilities out. */
export function softmaxScoreMap(map: ScoreMap): ScoreMap {
  if (map.kind === 'probs') return map;
  const out = Float32Array.from(map.data);
  softmaxInPlace(out, map.classes);
  return { ...map, data: out, kind: 'probs' };
}

/** Class of the highest score per pixel (the first on ties). */
export function argmaxScoreMap(map: ScoreMap, ignoreIndex = 255): LabelMap {
  const { classes: C, data } = map;
  if (C > 255) throw new Error(`argmax to a Uint8 LabelMap supports at most 255 classes, got ${C}`);
  const n = map.width * map.height;
  const out = new Uint8Array(n);
  for (let i = 0, p = 0; i < n; i++, p += C) {
    let best = 0;
    let bv = data[p];
    for (let c = 1; c < C; c++) {
      if (data[p + c] > bv) {
        bv = data[p + c];
        best = c;
      }
    }
    out[i] = best;
  }
  return { width: map.width, height: map.height, data: out, ignoreIndex };
}

/**
 * The argmax of the bilinear interpolation of a map to width x height, one pixel at a time: the
 * labels of resizeScoreMap + argmaxScoreMap (the same float32 values, the same first-on-ties rule)
 * without the width x height x classes float map in between (12 MB instead of 1 GB for a
 * 4000x3000 image with 21 classes). Softmax keeps the order of a pixel's scores, so these are
 * also the labels of the probabilities.
 *
 * Where the four cells around a pixel share their argmax k, k is the argmax of any blend of them
 * (each class's blend is the same convex combination, and k leads in every cell), so only pixels
 * between cells of different labels interpolate all classes: a few percent of a large upsample.
 */
export function interpolatedLabels(map: ScoreMap, width: number, height: number, alignCorners: boolean, ignoreIndex = 255): LabelMap {
  checkResizeTarget(width, height);
  const { classes: C, width: W, data: src } = map;
  if (C > 255) throw new Error(`argmax to a Uint8 LabelMap supports at most 255 classes, got ${C}`);
  const cellLabel = argmaxScoreMap(map).data;
  const out = new Uint8Array(width * height);
  const v = new Float32Array(C);
  const xs = sourceCoords(W, width, alignCorners);
  const ys = sourceCoords(map.height, height, alignCorners);
  for (let y = 0; y < height; y++) {
    const r0 = ys.i0[y] * W;
    const r1 = ys.i1[y] * W;
    const fy = ys.f[y];
    for (let x = 0; x < width; x++) {
      const c00 = r0 + xs.i0[x];
      const c01 = r0 + xs.i1[x];
      const c10 = r1 + xs.i0[x];
      const c11 = r1 + xs.i1[x];
      const k = cellLabel[c00];
      if (cellLabel[c01] === k && cellLabel[c10] === k && cellLabel[c11] === k) {
        out[y * width + x] = k;
        continue;
      }
      const fx = xs.f[x];
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const p00 = c00 * C;
      const p01 = c01 * C;
      const p10 = c10 * C;
      const p11 = c11 * C;
      for (let c = 0; c < C; c++) v[c] = w00 * src[p00 + c] + w01 * src[p01 + c] + w10 * src[p10 + c] + w11 * src[p11 + c];
      let best = 0;
      for (let c = 1; c < C; c++) if (v[c] > v[best]) best = c;
      out[y * width + x] = best;
    }
  }
  return { width, height, data: out, ignoreIndex };
}

/** What upsampling returns: the scores, probabilities, labels, or probabilities and labels. */
export type UpsampleOutput = 'scores' | 'probs' | 'labels' | 'both';

export interface UpsampleArgs {
  map: ScoreMap;
  /** The target size: the labels' size, and the float map's unless `floatSize` caps it. */
  width: number;
  height: number;
  alignCorners: boolean;
  output: UpsampleOutput;
  /** A smaller size for the float map (a memory budget's cap, see planUpsample); the labels stay at width x height. */
  floatSize?: { width: number; height: number };
}

export interface UpsampleResult {
  map?: ScoreMap;
  labels?: LabelMap;
}

/**
 * The upsample node's operation: resize, then softmax (in place) and / or argmax as asked. The
 * labels are interpolated from the input map itself (interpolatedLabels), so they are at full
 * size even when the float map is capped.
 */
export function upsampleScoreMap(a: UpsampleArgs): UpsampleResult {
  const labels = a.output === 'labels' || a.output === 'both' ? interpolatedLabels(a.map, a.width, a.height, a.alignCorners) : undefined;
  if (a.output === 'labels') return { labels };
  const size = a.floatSize ?? { width: a.width, height: a.height };
  // Stride in target pixels per cell: 1 at the target's size, above 1 where a budget capped the map.
  let map: ScoreMap = { ...resizeScoreMap(a.map, size.width, size.height, a.alignCorners), stride: a.width / size.width };
  if (a.output !== 'scores' && map.kind !== 'probs') {
    softmaxInPlace(map.data, map.classes); // resizeScoreMap's own new array
    map = { ...map, kind: 'probs' };
  }
  return { map, labels };
}

/** What an upsample will allocate, and at which size its float map comes out. */
export interface UpsamplePlan {
  /** Bytes: the copy of the input sent to the worker, the float map, the labels. */
  need: number;
  /** The float map's size (absent for labels only): width x height, or smaller to fit the budget. */
  floatSize?: { width: number; height: number };
  capped: boolean;
}

/**
 * Plans an upsample against a memory budget (bytes): labels (1 byte a pixel) always at full size,
 * or a refusal; a float map at full size where it fits, else at the largest size of the same
 * aspect that does (the map's stride then says how coarse it is). A float map counts twice
 * (classes x 4 bytes x 2 copies a pixel): the map on the message and the copy the next stage
 * (dense-crf, or a second upsample) sends to its compute worker, so that stage still has room.
 */
export function planUpsample(map: { width: number; height: number; classes: number }, width: number, height: number, output: UpsampleOutput, budget: number): UpsamplePlan {
  const input = map.width * map.height * map.classes * 4;
  const labels = output === 'labels' || output === 'both' ? width * height : 0;
  const fixed = input + labels;
  if (output === 'labels') {
    checkMemory(fixed, budget, `labels at ${width}x${height} (from a ${map.width}x${map.height}x${map.classes} map)`, 'raise the node\'s memory budget or send a smaller image');
    return { need: fixed, capped: false };
  }
  const perPixel = FLOAT_MAP_COPIES * map.classes * 4;
  const size = fitSize(width, height, perPixel, fixed, budget);
  if (!size) {
    checkMemory(fixed + perPixel * width * height, budget, `${output === 'scores' ? 'scores' : 'probabilities'} at ${width}x${height}x${map.classes}`,
      'choose labels as the output, or raise the node\'s memory budget');
  }
  const s = size!;
  return { need: fixed + perPixel * s.width * s.height, floatSize: s, capped: s.width !== width || s.height !== height };
}

/** Copies a float map on a wire is counted for: the map, and the next stage's copy in its worker. */
export const FLOAT_MAP_COPIES = 2;
