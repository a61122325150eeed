/** The library behind the nodes, for use from code (function nodes, scripts, other packages). */
export * from './contract';
export { DeepLab, normalizeSpec, VARIANT_BACKBONES } from './models/deeplab';
export type { ModelSpec, Variant, BackboneName } from './models/deeplab';
export { normalizeModelConfig, modelKey } from './models/config';
export type { ModelConfig, WeightsSource } from './models/config';
export { getModelCache, ModelCache, ModelHandle } from './cache/model-cache';
export { planInference, checkInferOptions } from './cache/inference-plan';
export type { InferOptions } from './cache/inference-plan';
export { initBackend, resolvePreference } from './engine/backend';
export { getPool, WorkerPool } from './worker/pool';
export { decodeImage, encodeImage, toRawImage } from './data/image';
export { resizeScoreMap, flipScoreMap, softmaxScoreMap, argmaxScoreMap } from './ops/score-map';
export { renderSegmentation } from './render/render';
export { saveModel, readSavedDir, readSavedUrl } from './weights/format';
