/**
 * Plain typed-array operations on ScoreMaps (HWC Float32Array): bilinear resize, flip,
 * softmax, argmax. They run on any thread without tfjs and allocate only their output.
 */
import { LabelMap, ScoreMap } from '../contract';

/**
 * Source coordinate of output index i when resizing n -> m samples.
 * alignCorners: the corner samples coincide (TF 1 / DeepLab's own code, sizes like 65 -> 513).
 * Otherwise half-pixel centres (PyTorch align_corners=False, torchvision's DeepLab heads).
 */
function sourceCoords(n: number, m: number, alignCorners: boolean): { i0: Int32Array; i1: Int32Array; f: Float32Array } {
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

/** Bilinear interpolation of every class channel to width x height. */
export function resizeScoreMap(map: ScoreMap, width: number, height: number, alignCorners: boolean): ScoreMap {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`resize target must be positive integers, got ${width}x${height}`);
  }
  const { classes: C, width: W, data: src } = map;
  const out = new Float32Array(width * height * C);
  const xs = sourceCoords(W, width, alignCorners);
  const ys = sourceCoords(map.height, height, alignCorners);
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

/** Per-pixel softmax over classes (numerically stable); probabilities in, probabilities out. */
export function softmaxScoreMap(map: ScoreMap): ScoreMap {
  if (map.kind === 'probs') return map;
  const { classes: C, data } = map;
  const out = new Float32Array(data.length);
  for (let p = 0; p < data.length; p += C) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) if (data[p + c] > max) max = data[p + c];
    let sum = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(data[p + c] - max);
      out[p + c] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let c = 0; c < C; c++) out[p + c] *= inv;
  }
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

/** What upsampling returns: the scores, probabilities, labels, or probabilities and labels. */
export type UpsampleOutput = 'scores' | 'probs' | 'labels' | 'both';

export interface UpsampleArgs {
  map: ScoreMap;
  width: number;
  height: number;
  alignCorners: boolean;
  output: UpsampleOutput;
}

export interface UpsampleResult {
  map?: ScoreMap;
  labels?: LabelMap;
}

/** The upsample node's operation: resize to width x height, then softmax and / or argmax as asked. */
export function upsampleScoreMap(a: UpsampleArgs): UpsampleResult {
  let map = resizeScoreMap(a.map, a.width, a.height, a.alignCorners);
  if (a.output === 'probs' || a.output === 'both') map = softmaxScoreMap(map);
  const labels = a.output === 'labels' || a.output === 'both' ? argmaxScoreMap(map) : undefined;
  return { map: a.output === 'labels' ? undefined : map, labels };
}
