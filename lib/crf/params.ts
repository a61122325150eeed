/**
 * Parameters of the fully connected CRF (Krähenbühl & Koltun 2011) and the published presets.
 * Kernels: appearance w1 exp(-|pi-pj|^2/2θα^2 - |Ii-Ij|^2/2θβ^2) and smoothness
 * w2 exp(-|pi-pj|^2/2θγ^2); positions in pixels, colours in 0..255 RGB.
 */
import { ContractError, describeValue } from '../contract';

export interface CrfParams {
  /** Mean-field iterations (0 returns softmax(-U)). */
  iterations: number;
  /** Appearance (bilateral) kernel weight. */
  w1: number;
  /** Appearance kernel: position standard deviation, pixels. */
  thetaAlpha: number;
  /** Appearance kernel: colour standard deviation, RGB levels. */
  thetaBeta: number;
  /** Smoothness (position-only) kernel weight. */
  w2: number;
  /** Smoothness kernel: position standard deviation, pixels. */
  thetaGamma: number;
}

export type CrfPresetName = 'deeplab-v2' | 'deeplab-v1-largefov' | 'densecrf-example';

export const CRF_PRESETS: Readonly<Record<CrfPresetName, Readonly<CrfParams>>> = Object.freeze({
  /** DeepLab v2 (ResNet-101) on VOC 2012: bi_w 4, bi_xy_std 67, bi_rgb_std 3, pos_w 3, pos_xy_std 1. */
  'deeplab-v2': Object.freeze({ iterations: 10, w1: 4, thetaAlpha: 67, thetaBeta: 3, w2: 3, thetaGamma: 1 }),
  /** DeepLab v1 LargeFOV: bi_w 4, bi_xy_std 121, bi_rgb_std 5, pos_w 3, pos_xy_std 3. */
  'deeplab-v1-largefov': Object.freeze({ iterations: 10, w1: 4, thetaAlpha: 121, thetaBeta: 5, w2: 3, thetaGamma: 3 }),
  /** The densecrf reference example: Gaussian sxy 3 weight 3, bilateral sxy 80 srgb 13 weight 10, 5 iterations. */
  'densecrf-example': Object.freeze({ iterations: 5, w1: 10, thetaAlpha: 80, thetaBeta: 13, w2: 3, thetaGamma: 3 }),
});

export const CRF_PRESET_NAMES = Object.keys(CRF_PRESETS) as CrfPresetName[];
export const CRF_PARAM_KEYS: readonly (keyof CrfParams)[] = ['iterations', 'w1', 'thetaAlpha', 'thetaBeta', 'w2', 'thetaGamma'];

/** More iterations than this is a mistake (mean field converges in a handful). */
export const MAX_ITERATIONS = 1000;

export function isCrfPresetName(v: unknown): v is CrfPresetName {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(CRF_PRESETS, v);
}

export function crfPreset(name: string): CrfParams {
  if (!isCrfPresetName(name)) throw new ContractError(`unknown CRF preset "${name}"; expected one of ${CRF_PRESET_NAMES.join(', ')}`);
  return { ...CRF_PRESETS[name] };
}

/** Throws a ContractError naming the first parameter out of range. */
export function validateCrfParams(p: CrfParams, what = 'CRF parameters'): CrfParams {
  if (!p || typeof p !== 'object') throw new ContractError(`${what}: expected {${CRF_PARAM_KEYS.join(', ')}}, got ${describeValue(p)}`);
  const it = p.iterations;
  if (!(Number.isInteger(it) && it >= 0 && it <= MAX_ITERATIONS)) {
    throw new ContractError(`${what}: iterations must be an integer from 0 to ${MAX_ITERATIONS}, got ${describeValue(it)}`);
  }
  for (const k of ['w1', 'w2'] as const) {
    if (!(typeof p[k] === 'number' && Number.isFinite(p[k]) && p[k] >= 0)) {
      throw new ContractError(`${what}: ${k} must be a finite number >= 0, got ${describeValue(p[k])}`);
    }
  }
  for (const k of ['thetaAlpha', 'thetaBeta', 'thetaGamma'] as const) {
    if (!(typeof p[k] === 'number' && Number.isFinite(p[k]) && p[k] > 0)) {
      throw new ContractError(`${what}: ${k} must be a finite number > 0, got ${describeValue(p[k])}`);
    }
  }
  return p;
}

/**
 * Applies a per-message override (e.g. msg.crf from a grid search) on top of base parameters.
 * Numbers may come as numeric strings; unknown keys are refused so a typo does not pass silently.
 */
export function applyCrfOverride(base: CrfParams, override: unknown, what = 'msg.crf'): CrfParams {
  if (override === undefined || override === null) return validateCrfParams({ ...base }, what);
  if (typeof override !== 'object' || Array.isArray(override) || ArrayBuffer.isView(override)) {
    throw new ContractError(`${what}: expected an object with any of ${CRF_PARAM_KEYS.join(', ')}, got ${describeValue(override)}`);
  }
  const out: CrfParams = { ...base };
  for (const [k, v] of Object.entries(override as Record<string, unknown>)) {
    if (!(CRF_PARAM_KEYS as readonly string[]).includes(k)) {
      throw new ContractError(`${what}: unknown key "${k}"; expected any of ${CRF_PARAM_KEYS.join(', ')}`);
    }
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number') throw new ContractError(`${what}.${k} must be a number, got ${describeValue(v)}`);
    out[k as keyof CrfParams] = n;
  }
  return validateCrfParams(out, what);
}
