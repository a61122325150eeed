/**
 * The dense-crf node's entry into the CRF: a working resolution under a memory budget.
 *
 * The CRF's memory grows with pixels x classes (the prior, Q, the messages and the lattices'
 * values: crfBytesPerPixel below). A 4000x3000 photo with 21 classes would need about 11 GB,
 * so the CRF runs at the largest size of the image's aspect that fits the budget:
 * - the score map (at the image's size, or coarser with stride > 1, e.g. deeplab-infer's logits)
 *   is resized bilinearly to the working size, the image by area averaging;
 * - the spatial standard deviations (thetaAlpha, thetaGamma, in pixels) scale with the image, so
 *   the kernels cover the same part of the picture (a kernel that shrinks below half a working
 *   pixel drops out, see MIN_WORKING_THETA); the colour one (thetaBeta) is unchanged;
 * - the labels come back at the image's full size: the refined probabilities interpolated
 *   bilinearly pixel by pixel and their argmax taken (no full-size float map);
 * - the probabilities, when asked for, stay at the working size (stride = image / working size).
 * At sizes that fit (513x513 and VOC's 500x375 with the default budget) it is the CRF at full
 * resolution, exactly as denseCrf.
 */
import { ContractError, LabelMap, RawImage, ScoreMap } from '../contract';
import { argmaxScoreMap, interpolatedLabels, resizeScoreMap } from '../ops/score-map';
import { areaDownscale } from '../ops/image-resize';
import { checkMemory, fitSize, formatBytes, Size } from '../runtime/memory-budget';
import { CrfOptions, CrfTiming, denseCrf } from './dense-crf';
import { CrfParams } from './params';

/**
 * Bytes the CRF takes per working pixel for C classes: 24 per class (prior, Q, messages, the
 * lattices' values) and 480 of per-pixel lattice structure (features, splat weights, vertices,
 * hash table). Fitted above the peak RSS of denseCrf in a fresh process (bench/crf-memory.ts,
 * DeepLab v2 preset, two threads, a noise image: every pixel its own lattice vertex, the worst
 * case): 513x513x21 peaked 221 MB above its inputs (estimate 259), 1000x750x21 517 MB (738),
 * 513x513x5 139 MB (158).
 */
export function crfBytesPerPixel(classes: number): number {
  return 24 * classes + 480;
}

export interface CrfPlan {
  /** The working size (the image's own where it fits). */
  width: number;
  height: number;
  /** The image's size: the labels come out at it. */
  imageWidth: number;
  imageHeight: number;
  capped: boolean;
  /** Estimated bytes at the working size. */
  need: number;
}

/**
 * The working size for a map + image pair under a budget (bytes); refuses (MemoryBudgetError)
 * when not even a small working size fits next to the inputs and the full-size labels.
 * `probs`: the probabilities are returned too (one more n x C float32 array on the message).
 */
export function planCrf(map: { width: number; height: number; classes: number }, image: Size, budget: number, probs = false): CrfPlan {
  const { width: W, height: H } = image;
  const C = map.classes;
  // The copies of the map and of the image in the worker, and the labels at full size.
  const fixed = map.width * map.height * C * 4 + W * H * 3 + W * H;
  // At the working size: the CRF, the resized image and map, and the probabilities asked for.
  const perPixel = crfBytesPerPixel(C) + 3 + 4 * C + (probs ? 4 * C : 0);
  const size = fitSize(W, H, perPixel, fixed, budget, 16);
  if (!size) {
    checkMemory(fixed + perPixel * W * H, budget, `the dense CRF of a ${W}x${H} image with ${C} classes`,
      `even a 16-pixel working size does not fit next to the ${formatBytes(fixed)} of input and labels: raise the node's memory budget`);
  }
  const s = size!;
  return { width: s.width, height: s.height, imageWidth: W, imageHeight: H, capped: s.width !== W || s.height !== H, need: fixed + perPixel * s.width * s.height };
}

/**
 * Below this many working pixels a kernel's spatial standard deviation couples no two pixels
 * (weight exp(-1 / (2 * 0.5^2)) = 0.14 at one pixel, falling fast), so the kernel is left out: it
 * could only smooth within what is now a fraction of one pixel (DeepLab's 1-pixel smoothness
 * kernel on a 4000x3000 photo worked at 1000x750), and its lattice would hold a vertex per pixel.
 */
export const MIN_WORKING_THETA = 0.5;

/** Spatial standard deviations scaled to a working size (scale = working / image width); kernels that shrink below MIN_WORKING_THETA drop out. */
export function scaleCrfParams(params: CrfParams, scale: number): CrfParams {
  if (scale === 1) return params;
  const thetaAlpha = params.thetaAlpha * scale;
  const thetaGamma = params.thetaGamma * scale;
  return {
    ...params,
    thetaAlpha: Math.max(thetaAlpha, MIN_WORKING_THETA),
    w1: thetaAlpha < MIN_WORKING_THETA ? 0 : params.w1,
    thetaGamma: Math.max(thetaGamma, MIN_WORKING_THETA),
    w2: thetaGamma < MIN_WORKING_THETA ? 0 : params.w2,
  };
}

export interface WorkingCrfArgs {
  map: ScoreMap;
  image: RawImage;
  params: CrfParams;
  /** The working size (planCrf). */
  width: number;
  height: number;
  /** How a coarser map is resized to the working size (the upsample node's convention; default true). */
  alignCorners?: boolean;
  /** Also return the probabilities (at the working size). */
  probs?: boolean;
  options?: CrfOptions;
}

export interface WorkingCrfResult {
  /** At the image's size. */
  labels: LabelMap;
  /** At the working size, kind 'probs', stride image / working size; only when asked. */
  probs?: ScoreMap;
  timing: CrfTiming;
}

/** The CRF at a working size, labels at the image's size. CPU-bound: runs in a compute worker. */
export function denseCrfAtWorkingSize(a: WorkingCrfArgs): WorkingCrfResult {
  const { map, image, width, height } = a;
  const W = image.width;
  const H = image.height;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 && width <= W && height <= H)) {
    throw new ContractError(`CRF working size must be from 1x1 to the image's ${W}x${H}, got ${width}x${height}`);
  }
  const m = map.width === width && map.height === height ? map : resizeScoreMap(map, width, height, a.alignCorners ?? true);
  const img = areaDownscale(image, width, height);
  const params = scaleCrfParams(a.params, width / W);
  const { probs, timing } = denseCrf({ ...m, stride: 1 }, img, params, a.options ?? {});
  // Pixel grids of one picture at two sizes: half-pixel centres line them up.
  const labels = width === W && height === H ? argmaxScoreMap(probs, 255) : interpolatedLabels(probs, W, H, false, 255);
  return { labels, probs: a.probs ? { ...probs, stride: W / width } : undefined, timing };
}
