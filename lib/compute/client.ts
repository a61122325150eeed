/**
 * The client of the compute workers: the one place in the package that asks for a task by
 * name. Nodes call these functions (or the model cache, which calls the model ones); each
 * decides what is copied and what is moved to the worker, so a caller never hands over data
 * it still shares with other wires.
 */
import type { LabelMap, RawImage, ScoreMap } from '../contract';
import type { ComposedPicture } from '../render/render';
import { copyBytes, copyFloats } from '../runtime/copy-slices';
import type { WorkingCrfArgs, WorkingCrfResult } from '../crf/working-resolution';
import type { FusionOptions } from '../fusion/msc-fusion';
import type { InferOptions } from '../inference/plan';
import type { ModelConfig } from '../models/config';
import type { UpsampleOutput, UpsampleResult } from '../ops/score-map';
import { getPool, WorkerPool, WorkerSlot } from './pool';
import type { InferArgs, LoadResult, SwapResult, SwapSource } from './model-host';
import type { ComposeArgs, CrfArgs, CrfOutput, EngineMemory } from './tasks';

/** Name of the backend the workers for this preference run. */
export function backendName(backend?: string, pool: WorkerPool = getPool()): Promise<string> {
  return pool.run('engine.backend', null, { backend });
}

/** tfjs memory and the process RSS as one worker sees them (leak checks, benchmarks). */
export function engineMemory(slot: WorkerSlot): Promise<EngineMemory> {
  return slot.run('engine.memory', null);
}

/**
 * A score map to width x height (bilinear), then softmax and / or argmax; the caller's map is left
 * as it is. floatSize: a smaller size for the float map (a memory budget's cap); labels stay full size.
 */
export async function upsample(map: ScoreMap, width: number, height: number, alignCorners: boolean, output: UpsampleOutput, floatSize?: { width: number; height: number }, pool: WorkerPool = getPool()): Promise<UpsampleResult> {
  const copy = { ...map, data: await copyFloats(map.data) };
  return pool.run('ops.upsample', { map: copy, width, height, alignCorners, output, floatSize }, { transfer: [copy.data.buffer as ArrayBuffer] });
}

/** Fusion of the score maps of one image (large maps: small ones fuse inline); the caller's maps are left as they are. */
export async function fuse(maps: readonly ScoreMap[], options: FusionOptions, pool: WorkerPool = getPool()): Promise<ScoreMap> {
  const copies: ScoreMap[] = [];
  for (const m of maps) copies.push({ ...m, data: await copyFloats(m.data) });
  return pool.run('fusion.fuse', { maps: copies, options }, { transfer: copies.map((m) => m.data.buffer as ArrayBuffer) });
}

/**
 * The dense CRF of a map and its image: refined probabilities and their labels. It takes both
 * cores (a helper thread) only while no other task is in flight: a forward pass or another CRF
 * would compete with the helper and stall the two threads' barriers. The map and the image are
 * copied and the copies moved (other wires may hold them).
 */
export async function crf(args: Omit<CrfArgs, 'labels'>, pool: WorkerPool = getPool()): Promise<CrfOutput & { labels: LabelMap }> {
  const map = { ...args.map, data: await copyFloats(args.map.data) };
  const image = { ...args.image, data: await copyBytes(args.image.data) };
  const options = { ...args.options, threads: args.options?.threads ?? (pool.busy ? 1 : undefined) };
  const r = await pool.run('crf.run', { ...args, map, image, options }, { transfer: [map.data.buffer as ArrayBuffer, image.data.buffer as ArrayBuffer] });
  if (!r.labels) throw new Error('the CRF task returned no labels');
  return { ...r, labels: r.labels };
}

/**
 * The dense-crf node's CRF: at a working size (planCrf), labels at the image's size. The map and
 * the image are copied (other wires share their memory) and the copies moved to the worker.
 */
export async function crfAtWorkingSize(args: WorkingCrfArgs, pool: WorkerPool = getPool()): Promise<WorkingCrfResult> {
  const map = { ...args.map, data: await copyFloats(args.map.data) };
  const image = { ...args.image, data: await copyBytes(args.image.data) };
  const options = { ...args.options, threads: args.options?.threads ?? (pool.busy ? 1 : undefined) };
  return pool.run('crf.working', { ...args, map, image, options }, { transfer: [map.data.buffer as ArrayBuffer, image.data.buffer as ArrayBuffer] });
}

/**
 * seg-render's pixel work (argmax of a score map, colours, blend, classes present) in a compute
 * worker; the picture comes back moved, ready for sharp. The inputs are copied (other wires hold them).
 */
export async function composePicture(args: ComposeArgs, pool: WorkerPool = getPool()): Promise<ComposedPicture> {
  const transfer: ArrayBuffer[] = [];
  const moved = <T extends Uint8Array | Float32Array>(data: T): T => {
    transfer.push(data.buffer as ArrayBuffer);
    return data;
  };
  const labels = args.labels && { ...args.labels, data: moved(await copyBytes(args.labels.data)) };
  const map = args.map && { ...args.map, data: moved(await copyFloats(args.map.data)) };
  const image = args.image && { ...args.image, data: moved(await copyBytes(args.image.data)) };
  return pool.run('render.compose', { ...args, labels, map, image }, { transfer });
}

/**
 * A model's tasks reach its worker in the order they were asked for. An infer copies its pixels
 * first (in slices, yielding to the event loop), and a swap, save or release asked meanwhile must
 * not overtake it: frames sent before a publish run on the old weights. What is serialised is the
 * posting, not the work: each task's result still comes when the worker answers.
 */
const postQueues = new WeakMap<WorkerSlot, Promise<unknown>>();

function postInOrder<R>(slot: WorkerSlot, post: () => Promise<{ result: Promise<R> }> | { result: Promise<R> }): Promise<R> {
  const posted = (postQueues.get(slot) ?? Promise.resolve()).then(post);
  postQueues.set(slot, posted.then(() => undefined, () => undefined));
  return posted.then((p) => p.result);
}

/** The model tasks, on the worker that holds the model (the model cache's side of them). */
export const hostedModel = {
  load(slot: WorkerSlot, key: string, config: ModelConfig): Promise<LoadResult> {
    return postInOrder(slot, () => ({ result: slot.run('model.load', { key, config }) }));
  },

  /** Forward pass(es) of one image; its pixels are copied (the caller keeps the image for msg.image). */
  infer(slot: WorkerSlot, key: string, image: RawImage, options: Partial<InferOptions>): Promise<ScoreMap[]> {
    return postInOrder(slot, async () => {
      const data = await copyBytes(image.data);
      const args: InferArgs = { key, image: { ...image, data }, options };
      return { result: slot.run('model.infer', args, [data.buffer as ArrayBuffer]) };
    });
  },

  release(slot: WorkerSlot, key: string): Promise<boolean> {
    return postInOrder(slot, () => ({ result: slot.run('model.release', { key }) }));
  },

  swap(slot: WorkerSlot, key: string, source: SwapSource): Promise<SwapResult> {
    return postInOrder(slot, () => ({ result: slot.run('model.swap', { key, source }) }));
  },

  save(slot: WorkerSlot, key: string, dir: string, meta?: Record<string, unknown>): Promise<void> {
    return postInOrder(slot, () => ({ result: slot.run('model.save', { key, dir, meta }) }));
  },
};

export type { ComposeArgs, CrfArgs, CrfOutput, EngineMemory, LoadResult, SwapResult, SwapSource };
