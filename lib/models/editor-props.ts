/**
 * The deeplab-model config node's editor properties -> a ModelConfig. Every property may be
 * absent (hand-written or older flows): the defaults are the editor's.
 */
import * as path from 'path';
import { CLASS_PRESETS, isClassPresetName } from '../data/palette';
import { BackboneName, ModelSpec, Variant } from './deeplab';
import { ModelConfig, normalizeModelConfig, WeightsSource } from './config';
import { Preprocessing } from './preprocess';

export interface ModelProps {
  variant?: string;
  backbone?: string;
  classPreset?: string;
  customClasses?: string;
  outputStride?: string | number;
  layout?: string;
  aux?: boolean | string;
  width?: string | number;
  weightsSource?: string;
  weightsPath?: string;
  weightsUrl?: string;
  preprocessing?: string;
  backend?: string;
  seed?: string | number;
}

export const MODEL_DEFAULTS = {
  variant: 'v3plus',
  backbone: 'default',
  classPreset: 'voc21',
  outputStride: 'default',
  layout: 'paper',
  width: 1,
  weightsSource: 'random',
  preprocessing: 'default',
  backend: 'auto',
} as const;

function blank(v: unknown): boolean {
  return v === undefined || v === null || v === '' || v === 'default';
}

export function classListFromProps(p: ModelProps): string[] {
  const preset = blank(p.classPreset) ? MODEL_DEFAULTS.classPreset : String(p.classPreset);
  if (preset === 'custom') {
    const names = String(p.customClasses ?? '').split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
    if (names.length < 1) throw new Error('custom classes: give at least one class name (comma separated)');
    return names;
  }
  if (!isClassPresetName(preset)) throw new Error(`unknown class preset "${preset}": expected voc21, cityscapes19, ade20k150 or custom`);
  return [...CLASS_PRESETS[preset].names];
}

/** `baseDir` resolves a relative weights directory (Node-RED's user directory). */
export function modelConfigFromProps(p: ModelProps, baseDir = process.cwd()): ModelConfig {
  const names = classListFromProps(p);
  const spec: Partial<ModelSpec> = {
    variant: (blank(p.variant) ? MODEL_DEFAULTS.variant : p.variant) as Variant,
    classes: names.length,
    layout: (blank(p.layout) ? MODEL_DEFAULTS.layout : p.layout) as ModelSpec['layout'],
    aux: p.aux === true || p.aux === 'true',
    width: blank(p.width) ? MODEL_DEFAULTS.width : Number(p.width),
  };
  if (!blank(p.backbone)) spec.backbone = p.backbone as BackboneName;
  if (!blank(p.outputStride)) spec.outputStride = Number(p.outputStride) as 8 | 16;
  if (!blank(p.seed)) spec.seed = Number(p.seed);
  const src = blank(p.weightsSource) ? MODEL_DEFAULTS.weightsSource : p.weightsSource;
  let weights: WeightsSource;
  if (src === 'random') weights = { source: 'random' };
  else if (src === 'dir') {
    if (!p.weightsPath) throw new Error('weights from a directory: set the directory');
    weights = { source: 'dir', path: path.resolve(baseDir, p.weightsPath) };
  } else if (src === 'url') weights = { source: 'url', url: String(p.weightsUrl ?? '').trim() };
  else throw new Error(`unknown weights source "${src}": expected random, dir or url`);
  return normalizeModelConfig({
    spec,
    weights,
    preprocessing: blank(p.preprocessing) ? undefined : (p.preprocessing as Preprocessing),
    backend: blank(p.backend) ? MODEL_DEFAULTS.backend : String(p.backend),
    classNames: names,
  });
}
