/** The library behind the nodes, for use from code (function nodes, scripts, other packages). */
export * from './contract';
export { DeepLab, normalizeSpec, VARIANT_BACKBONES } from './models/deeplab';
export type { ModelSpec, Variant, BackboneName } from './models/deeplab';
export { normalizeModelConfig, modelKey } from './models/config';
export type { ModelConfig, WeightsSource } from './models/config';
export { getModelCache, ModelCache, ModelHandle } from './compute/model-cache';
export { planInference, checkInferOptions } from './inference/plan';
export type { InferOptions } from './inference/plan';
export { predictLabels, predictProbs } from './inference/predict';
export { initBackend, resolvePreference } from './engine/backend';
export { getPool, WorkerPool } from './compute/pool';
export { backendName, crf, fuse, upsample } from './compute/client';
export { decodeImage, encodeImage, toRawImage } from './data/image';
export { resizeScoreMap, flipScoreMap, softmaxScoreMap, argmaxScoreMap } from './ops/score-map';
export { renderSegmentation } from './render/render';
export { saveModel, readSavedDir, readSavedUrl } from './weights/format';
