/**
 * A model as the deeplab-model config node describes it, and the key the model cache
 * shares it under.
 */
import { ModelSpec, normalizeSpec } from './deeplab';
import { defaultPreprocessing, Preprocessing, PREPROCESSINGS } from './preprocess';

export type WeightsSource =
  | { source: 'random' }
  | { source: 'dir'; path: string }
  | { source: 'url'; url: string }
  /** Another implementation's checkpoint file (PyTorch), converted as it loads. */
  | { source: 'checkpoint'; path: string; layout?: string; outputStride?: 8 | 16 }
  /** An entry of the catalogue of published weights, downloaded once into the cache folder. */
  | { source: 'published'; id: string; cacheDir?: string }
  /** A TF.js graph model (a folder or model.json path, or a URL), run as it is up to its logits node (weights/tfjs-graph). */
  | { source: 'tfjs-graph'; path?: string; url?: string; logitsNode?: string }
  /**
   * An ONNX model file (a path or a URL) run by ONNX Runtime up to its logits (weights/onnx-file): this package's
   * exports describe themselves; another's gets the config's preprocessing and classes, and optionally names its
   * output tensor, its input layout and whether that output holds probabilities.
   */
  | { source: 'onnx'; path?: string; url?: string; output?: string; layout?: 'auto' | 'nchw' | 'nhwc'; outputKind?: 'logits' | 'probs' };

export interface ModelConfig {
  spec: ModelSpec;
  preprocessing: Preprocessing;
  weights: WeightsSource;
  backend: string;
  classNames?: string[];
  /** Size of the warm-up pass after loading (0 skips it). */
  warmupSize?: number;
}

export function normalizeModelConfig(c: Partial<Omit<ModelConfig, 'spec'>> & { spec?: Partial<ModelSpec> }): ModelConfig {
  const spec = normalizeSpec(c.spec ?? {});
  const preprocessing = c.preprocessing ?? defaultPreprocessing(spec.variant, spec.layout);
  if (!PREPROCESSINGS.includes(preprocessing)) throw new Error(`unknown preprocessing "${preprocessing}": expected ${PREPROCESSINGS.join(', ')}`);
  const weights = c.weights ?? { source: 'random' };
  if (weights.source === 'dir' && !weights.path) throw new Error('weights from a directory need a path');
  if (weights.source === 'url' && !/^https?:\/\//i.test(weights.url ?? '')) throw new Error(`weights URL must start with http:// or https://, got "${weights.url}"`);
  if (weights.source === 'checkpoint' && !weights.path) throw new Error('weights from a checkpoint file need its path');
  if (weights.source === 'published' && !weights.id) throw new Error('published weights need a catalogue id');
  if (weights.source === 'tfjs-graph') {
    if (!weights.path && !weights.url) throw new Error('a TF.js graph model needs a path (its folder or model.json) or a URL');
    if (weights.path && weights.url) throw new Error('a TF.js graph model takes a path or a URL, not both');
    if (weights.url && !/^https?:\/\//i.test(weights.url)) throw new Error(`TF.js graph model URL must start with http:// or https://, got "${weights.url}"`);
    if (weights.logitsNode !== undefined && typeof weights.logitsNode !== 'string') throw new Error('the logits node of a TF.js graph model is a node name (a string)');
  }
  if (weights.source === 'onnx') {
    if (!weights.path && !weights.url) throw new Error('an ONNX model needs a path (its .onnx file) or a URL');
    if (weights.path && weights.url) throw new Error('an ONNX model takes a path or a URL, not both');
    if (weights.url && !/^https?:\/\//i.test(weights.url)) throw new Error(`ONNX model URL must start with http:// or https://, got "${weights.url}"`);
    if (weights.layout !== undefined && !['auto', 'nchw', 'nhwc'].includes(weights.layout)) throw new Error(`ONNX input layout must be auto, nchw or nhwc, got "${weights.layout}"`);
    if (weights.outputKind !== undefined && !['logits', 'probs'].includes(weights.outputKind)) throw new Error(`ONNX output kind must be logits or probs, got "${weights.outputKind}"`);
  }
  if (c.classNames && c.classNames.length !== spec.classes) {
    throw new Error(`${c.classNames.length} class names given for ${spec.classes} classes`);
  }
  return { spec, preprocessing, weights, backend: c.backend || 'auto', classNames: c.classNames, warmupSize: c.warmupSize };
}

/** Configs that would load the same network and weights share one cache entry. */
export function modelKey(c: ModelConfig): string {
  return JSON.stringify({ spec: c.spec, pre: c.preprocessing, w: c.weights, b: c.backend });
}
