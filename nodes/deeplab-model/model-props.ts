/**
 * The deeplab-model config node's editor properties -> a ModelConfig. Every property may be
 * absent (hand-written or older flows): the defaults are the editor's.
 */
import * as path from 'path';
import { intProp, isBlank, numberProp } from '../_shared/props';
import { CLASS_PRESET_NAMES, CLASS_PRESETS, ClassPresetName, isClassPresetName } from '../../lib/data/palette';
import { findPublished } from '../../lib/weights/catalogue';
import { LAYOUT_NAMES, LayoutName } from '../../lib/weights/layouts';
import { BackboneName, ModelSpec, Variant } from '../../lib/models/deeplab';
import { ModelConfig, normalizeModelConfig, WeightsSource } from '../../lib/models/config';
import { Preprocessing } from '../../lib/models/preprocess';
import { resolvePreference } from '../../lib/engine/backend';

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
  /** Catalogue id of published weights (weights source 'published'). */
  publishedId?: string;
  /** Folder for downloaded weights; blank: deeplab-weights/ in the Node-RED user directory. */
  weightsCache?: string;
  /** PyTorch checkpoint file and the layout its names follow (weights source 'checkpoint'). */
  checkpointPath?: string;
  checkpointLayout?: string;
  /** TF.js graph model (weights source 'tfjs-graph'): its folder, model.json path or http(s) URL, and optionally its logits node. */
  graphModel?: string;
  graphLogitsNode?: string;
  /** ONNX model (weights source 'onnx'): its .onnx file or http(s) URL; optionally its input layout, output tensor and what that holds. */
  onnxModel?: string;
  onnxLayout?: string;
  onnxOutput?: string;
  onnxOutputKind?: string;
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

/** The engine choice (auto, onnxruntime, onnxruntime-cuda, onnxruntime-cpu, tensorflow, wasm, cpu), checked here so a bad value marks the config. */
export function backendFromProps(p: ModelProps): string {
  const b = isBlank(p.backend) ? MODEL_DEFAULTS.backend : String(p.backend).trim();
  if (b !== 'auto') resolvePreference(b);
  return b;
}

export function classListFromProps(p: ModelProps): string[] {
  const preset = isBlank(p.classPreset) ? MODEL_DEFAULTS.classPreset : String(p.classPreset);
  if (preset === 'custom') {
    const names = String(p.customClasses ?? '').split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
    if (names.length < 1) throw new Error('custom classes: give at least one class name (comma separated)');
    return names;
  }
  if (!isClassPresetName(preset)) throw new Error(`unknown class preset "${preset}": expected voc21, cityscapes19, ade20k150 or custom`);
  return [...CLASS_PRESETS[preset].names];
}

/**
 * Published weights decide the network, classes and preprocessing: the editor locks those fields,
 * and a flow written by hand gets the catalogue's values whatever it says.
 */
function publishedConfig(p: ModelProps, baseDir: string): ModelConfig {
  const id = String(p.publishedId ?? '').trim();
  if (!id) throw new Error('published weights: choose an entry of the catalogue');
  const entry = findPublished(id);
  const cacheDir = isBlank(p.weightsCache) ? path.join(baseDir, 'deeplab-weights') : path.resolve(baseDir, String(p.weightsCache));
  return normalizeModelConfig({
    spec: { ...entry.spec, width: 1, seed: 1 },
    weights: { source: 'published', id: entry.id, cacheDir },
    preprocessing: entry.preprocessing,
    backend: backendFromProps(p),
    classNames: [...entry.classNames],
  });
}

/**
 * A TF.js graph model runs as it is: the network fields do not apply (the editor disables them);
 * only the class names do, and they must be as many as the graph's logits have (checked at load).
 */
function graphConfig(p: ModelProps, baseDir: string): ModelConfig {
  const names = classListFromProps(p);
  const where = String(p.graphModel ?? '').trim();
  if (!where) throw new Error('TF.js graph model: set its folder (holding model.json) or its URL');
  const logitsNode = String(p.graphLogitsNode ?? '').trim() || undefined;
  const weights: WeightsSource = /^https?:\/\//i.test(where)
    ? { source: 'tfjs-graph', url: where, logitsNode }
    : { source: 'tfjs-graph', path: path.resolve(baseDir, where), logitsNode };
  return normalizeModelConfig({
    spec: { classes: names.length },
    weights,
    backend: backendFromProps(p),
    classNames: names,
  });
}

/**
 * An ONNX model runs as it is: the network fields do not apply (the editor disables them). Its
 * classes and preprocessing are declared here (ImageNet's by default, as PyTorch exports expect)
 * unless the file is one of this package's exports, whose metadata brings its own.
 */
function onnxConfig(p: ModelProps, baseDir: string): ModelConfig {
  const names = classListFromProps(p);
  const where = String(p.onnxModel ?? '').trim();
  if (!where) throw new Error('ONNX model: set its .onnx file or its URL');
  const layout = isBlank(p.onnxLayout) ? 'auto' : String(p.onnxLayout);
  if (!['auto', 'nchw', 'nhwc'].includes(layout)) throw new Error(`unknown ONNX input layout "${layout}": expected auto, nchw or nhwc`);
  const outputKind = isBlank(p.onnxOutputKind) ? 'logits' : String(p.onnxOutputKind);
  if (outputKind !== 'logits' && outputKind !== 'probs') throw new Error(`unknown ONNX output kind "${outputKind}": expected logits or probs`);
  const output = String(p.onnxOutput ?? '').trim() || undefined;
  const common = { output, layout: layout as 'auto' | 'nchw' | 'nhwc', outputKind: outputKind as 'logits' | 'probs' };
  const weights: WeightsSource = /^https?:\/\//i.test(where)
    ? { source: 'onnx', url: where, ...common }
    : { source: 'onnx', path: path.resolve(baseDir, where), ...common };
  return normalizeModelConfig({
    spec: { classes: names.length },
    weights,
    preprocessing: isBlank(p.preprocessing) ? 'imagenet' : (p.preprocessing as Preprocessing),
    backend: backendFromProps(p),
    classNames: names,
  });
}

/** The class preset whose names these are (for its colours), if any. */
export function presetOf(names: readonly string[]): ClassPresetName | undefined {
  return CLASS_PRESET_NAMES.find((n) => CLASS_PRESETS[n].names.length === names.length && CLASS_PRESETS[n].names.every((x, i) => x === names[i]));
}

/** `baseDir` resolves a relative weights directory (Node-RED's user directory). */
export function modelConfigFromProps(p: ModelProps, baseDir = process.cwd()): ModelConfig {
  if (p.weightsSource === 'published') return publishedConfig(p, baseDir);
  if (p.weightsSource === 'tfjs-graph') return graphConfig(p, baseDir);
  if (p.weightsSource === 'onnx') return onnxConfig(p, baseDir);
  const names = classListFromProps(p);
  const spec: Partial<ModelSpec> = {
    variant: (isBlank(p.variant) ? MODEL_DEFAULTS.variant : p.variant) as Variant,
    classes: names.length,
    layout: (isBlank(p.layout) ? MODEL_DEFAULTS.layout : p.layout) as ModelSpec['layout'],
    aux: p.aux === true || p.aux === 'true',
    width: numberProp(p.width, MODEL_DEFAULTS.width, 'width', { min: 0, minExclusive: true, max: 4 }),
  };
  if (!isBlank(p.backbone)) spec.backbone = p.backbone as BackboneName;
  if (!isBlank(p.outputStride)) spec.outputStride = Number(p.outputStride) as 8 | 16;
  if (!isBlank(p.seed)) spec.seed = intProp(p.seed, 1, 'seed');
  const src = isBlank(p.weightsSource) ? MODEL_DEFAULTS.weightsSource : p.weightsSource;
  let weights: WeightsSource;
  if (src === 'random') weights = { source: 'random' };
  else if (src === 'dir') {
    if (!p.weightsPath) throw new Error('weights from a directory: set the directory');
    weights = { source: 'dir', path: path.resolve(baseDir, p.weightsPath) };
  } else if (src === 'url') {
    const url = String(p.weightsUrl ?? '').trim();
    if (!/^https?:\/\/\S+$/i.test(url)) throw new Error(`weights from a URL: give an http(s) URL, got ${JSON.stringify(url)}`);
    weights = { source: 'url', url };
  }
  else if (src === 'checkpoint') {
    if (!p.checkpointPath) throw new Error('weights from a PyTorch checkpoint: set the file');
    const layout = isBlank(p.checkpointLayout) || p.checkpointLayout === 'auto' ? 'auto' : String(p.checkpointLayout);
    if (layout !== 'auto' && !LAYOUT_NAMES.includes(layout as LayoutName)) throw new Error(`unknown checkpoint layout "${layout}": expected auto or ${LAYOUT_NAMES.join(', ')}`);
    weights = { source: 'checkpoint', path: path.resolve(baseDir, p.checkpointPath), layout, outputStride: spec.outputStride };
  } else throw new Error(`unknown weights source "${src}": expected random, dir, url, published, checkpoint, tfjs-graph or onnx`);
  return normalizeModelConfig({
    spec,
    weights,
    preprocessing: isBlank(p.preprocessing) ? undefined : (p.preprocessing as Preprocessing),
    backend: backendFromProps(p),
    classNames: names,
  });
}
