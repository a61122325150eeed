/**
 * Which input sizes a forward pass runs at, and how its logits map back onto the input.
 *
 * DeepLab's own code uses sizes k * stride + 1 so that, with align-corners resizing, logit cell j
 * sits exactly on input pixel j * stride: upsampling the logits back to the input is then exact.
 * An input of another size is padded bottom/right up to the next such size (snapUp), and the
 * padding is cropped from the result.
 */

export type ResizePolicy = 'valid' | 'pad' | 'none';
export const RESIZE_POLICIES: ResizePolicy[] = ['valid', 'pad', 'none'];

export interface InferOptions {
  /** valid: longest side to `size`, both sides snapped to k*stride+1 (no padding).
   *  pad: longest side to `size` keeping the aspect ratio exactly, padded to a valid size.
   *  none: the image's own size times the scale. */
  resize: ResizePolicy;
  size: number;
  scales: number[];
  flip: boolean;
}

/** One forward pass: the image resized to width x height, then padded bottom/right. */
export interface PlannedRun {
  scale: number;
  width: number;
  height: number;
  padBottom: number;
  padRight: number;
}

export interface InferPlan extends InferOptions {
  runs: PlannedRun[];
}

export const DEFAULT_INFER_OPTIONS: InferOptions = { resize: 'valid', size: 513, scales: [1], flip: false };

/** The align-corners rule lives with the models (their ONNX export records it); planning follows it. */
export { alignsCorners } from '../models/deeplab';

/** The nearest valid size k*stride+1 (k >= 1). */
function snap(v: number, stride: number): number {
  return Math.max(1, Math.round((v - 1) / stride)) * stride + 1;
}

/** The smallest valid size k*stride+1 (k >= 1) at least v: what an input is padded to. */
export function snapUp(v: number, stride: number): number {
  return Math.max(1, Math.ceil((v - 1) / stride)) * stride + 1;
}

/** A run at the image's own size, padded to a valid size (evaluation's input). */
export function paddedRun(width: number, height: number, stride: number, scale = 1): PlannedRun {
  return { scale, width, height, padBottom: snapUp(height, stride) - height, padRight: snapUp(width, stride) - width };
}

/**
 * The logit cells that cover `size` input pixels of a run padded by `pad`, of `cells` in all:
 * cell j sits on padded pixel j * (size + pad - 1) / (cells - 1); the cells past the last image
 * pixel (rounded) cover only padding.
 */
export function coveringCells(size: number, pad: number, cells: number): number {
  if (pad === 0) return cells;
  return Math.min(cells, Math.round(((size - 1) / (size + pad - 1)) * (cells - 1)) + 1);
}

export function checkInferOptions(o: Partial<InferOptions>): InferOptions {
  const r = { ...DEFAULT_INFER_OPTIONS, ...o };
  if (!RESIZE_POLICIES.includes(r.resize)) throw new Error(`resize policy must be one of ${RESIZE_POLICIES.join(', ')}, got "${r.resize}"`);
  if (!(Number.isInteger(r.size) && r.size >= 33 && r.size <= 4097)) throw new Error(`size must be an integer in 33..4097, got ${r.size}`);
  if (!Array.isArray(r.scales) || r.scales.length === 0 || r.scales.some((s) => !(s > 0 && s <= 4))) {
    throw new Error(`scales must be a non-empty list of numbers in (0, 4], got ${JSON.stringify(r.scales)}`);
  }
  return { ...r, flip: !!r.flip };
}

export function planInference(width: number, height: number, outputStride: number, opts: Partial<InferOptions>): InferPlan {
  const o = checkInferOptions(opts);
  const runs = o.scales.map((scale): PlannedRun => {
    if (o.resize === 'none') {
      return { scale, width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)), padBottom: 0, padRight: 0 };
    }
    const f = (o.size * scale) / Math.max(width, height);
    if (o.resize === 'valid') return { scale, width: snap(width * f, outputStride), height: snap(height * f, outputStride), padBottom: 0, padRight: 0 };
    return paddedRun(Math.max(1, Math.round(width * f)), Math.max(1, Math.round(height * f)), outputStride, scale);
  });
  return { ...o, runs };
}

/** Scales from the editor ("0.5, 0.75, 1") or a message (an array). */
export function parseScales(v: unknown): number[] {
  if (Array.isArray(v)) return v.map(Number);
  const s = String(v ?? '').trim();
  if (!s) return [1];
  return s.split(/[\s,]+/).filter(Boolean).map(Number);
}
