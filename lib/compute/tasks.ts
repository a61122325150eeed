/**
 * The typed task map of the compute workers: every task a worker runs, by name, with its argument
 * and result types (the pool and the client take them from `Tasks`, a type-only import, so the
 * main thread never loads this module). A task gets plain data (typed arrays arrive as
 * transferables) and returns a TaskOutput whose buffers are moved back, not copied.
 *
 * Callers never write these names: lib/compute/client is the one place that asks for a task.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMap, RawImage, ScoreMap } from '../contract';
import { CrfOptions, CrfTiming, denseCrf } from '../crf/dense-crf';
import { CrfParams } from '../crf/params';
import { denseCrfAtWorkingSize, WorkingCrfArgs, WorkingCrfResult } from '../crf/working-resolution';
import { fuseScoreMaps, FusionOptions } from '../fusion/msc-fusion';
import { ModelConfig } from '../models/config';
import { argmaxScoreMap, UpsampleArgs, UpsampleResult, upsampleScoreMap } from '../ops/score-map';
import { RGB } from '../data/palette';
import { ComposedPicture, composePicture, ComposeOptions } from '../render/render';
import { InferArgs, inferMaps, loadModel, LoadResult, releaseModel, saveHosted, swapWeights, SwapResult, SwapSource } from './model-host';
import { TaskOutput, transferablesOf } from './protocol';

export interface EngineMemory {
  backend: string;
  numTensors: number;
  numBytes: number;
  /** The whole process's RSS (every thread). */
  rss: number;
  /** This worker's V8 heap in use and its external memory (ArrayBuffers outside the heap). */
  heapUsed: number;
  external: number;
  /** The wasm backend's linear memory: it grows to the largest job's tensors and never shrinks (0 on other backends). */
  wasmBytes: number;
}

/** Bytes of the wasm backend's linear memory (its heap of tensors), 0 on another backend. */
function wasmHeapBytes(): number {
  const b = tf.getBackend() === 'wasm' ? (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }) : undefined;
  return b?.wasm?.HEAPU8?.buffer.byteLength ?? 0;
}

export interface CrfArgs {
  map: ScoreMap;
  image: RawImage;
  params: CrfParams;
  options?: CrfOptions;
  /** Also return the argmax labels (default true). */
  labels?: boolean;
}

export interface CrfOutput {
  /** Refined probabilities (kind 'probs', stride 1). */
  probs: ScoreMap;
  /** Their argmax (ignoreIndex 255), unless `labels: false` was asked. */
  labels?: LabelMap;
  timing: CrfTiming;
}

/** What seg-render's worker composes: labels, or a score map whose argmax is taken there. */
export interface ComposeArgs extends ComposeOptions {
  labels?: LabelMap;
  map?: ScoreMap;
  image?: RawImage;
  colors: RGB[];
}

export const TASKS = {
  'engine.backend': (): TaskOutput<string> => ({ result: tf.getBackend() }),
  'engine.memory': (): TaskOutput<EngineMemory> => {
    const m = tf.memory();
    const p = process.memoryUsage();
    return { result: { backend: tf.getBackend(), numTensors: m.numTensors, numBytes: m.numBytes, rss: p.rss, heapUsed: p.heapUsed, external: p.external, wasmBytes: wasmHeapBytes() } };
  },

  'model.load': async (a: { key: string; config: ModelConfig }): Promise<TaskOutput<LoadResult>> => ({ result: await loadModel(a.key, a.config) }),
  'model.infer': async (a: InferArgs): Promise<TaskOutput<ScoreMap[]>> => {
    const maps = await inferMaps(a);
    return { result: maps, transfer: transferablesOf(...maps.map((m) => m.data)) };
  },
  'model.release': async (a: { key: string }): Promise<TaskOutput<boolean>> => ({ result: await releaseModel(a.key) }),
  'model.swap': async (a: { key: string; source: SwapSource }): Promise<TaskOutput<SwapResult>> => ({ result: await swapWeights(a.key, a.source) }),
  'model.save': async (a: { key: string; dir: string; meta?: Record<string, unknown> }): Promise<TaskOutput<void>> => {
    await saveHosted(a.key, a.dir, a.meta);
    return { result: undefined };
  },

  // Score-map work is plain JavaScript, but a 513x513x21 map is tens of milliseconds: off the event loop.
  'ops.upsample': (a: UpsampleArgs): TaskOutput<UpsampleResult> => {
    const r = upsampleScoreMap(a);
    return { result: r, transfer: transferablesOf(r.map?.data, r.labels?.data) };
  },
  'fusion.fuse': (a: { maps: ScoreMap[]; options: FusionOptions }): TaskOutput<ScoreMap> => {
    const result = fuseScoreMaps(a.maps, a.options);
    return { result, transfer: transferablesOf(result.data) };
  },
  'crf.run': (a: CrfArgs): TaskOutput<CrfOutput> => {
    const { probs, timing } = denseCrf(a.map, a.image, a.params, a.options ?? {});
    const result: CrfOutput = { probs, timing };
    if (a.labels !== false) result.labels = argmaxScoreMap(probs, 255);
    return { result, transfer: transferablesOf(probs.data, result.labels?.data) };
  },
  'crf.working': (a: WorkingCrfArgs): TaskOutput<WorkingCrfResult> => {
    const result = denseCrfAtWorkingSize(a);
    return { result, transfer: transferablesOf(result.labels.data, result.probs?.data) };
  },
  'render.compose': (a: ComposeArgs): TaskOutput<ComposedPicture> => {
    const labels = a.labels ?? (a.map ? argmaxScoreMap(a.map) : undefined);
    if (!labels) throw new Error('nothing to render: neither labels nor a score map');
    const result = composePicture(labels, a.image, a.colors, a);
    return { result, transfer: transferablesOf(result.picture.data) };
  },
};

export type Tasks = typeof TASKS;
