/**
 * The process-wide model cache, main-thread side. A model is keyed by its config, loaded
 * once into one compute worker (which then runs all its forward passes), shared by every
 * node that asks for it, and released when the last of them lets go.
 */
import { RawImage, ScoreMap } from '../contract';
import { ModelConfig, modelKey, normalizeModelConfig } from '../models/config';
import { getPool, WorkerPool, WorkerSlot } from '../worker/pool';
import { InferOptions } from './inference-plan';
import type { InferArgs, LoadResult } from './worker-models';

interface Entry {
  key: string;
  /** Unique per cache entry, so a release racing a reload of the same config never hits the new model. */
  workerKey: string;
  config: ModelConfig;
  refs: number;
  slot?: WorkerSlot;
  loading?: Promise<LoadResult>;
  info?: LoadResult;
  loads: number;
  /** Weight swaps published since load (re-applied if the worker restarts). */
  swappedFrom?: { dir?: string; url?: string };
}

export interface CacheStats {
  key: string;
  refs: number;
  loads: number;
  worker?: number;
}

export class ModelHandle {
  private released = false;
  constructor(private readonly cache: ModelCache, private readonly entry: Entry) {}

  get key(): string {
    return this.entry.key;
  }

  get config(): ModelConfig {
    return this.entry.config;
  }

  /** Resolves once the model is loaded and warmed up in its worker. */
  ready(): Promise<LoadResult> {
    this.check();
    return this.cache.ensureLoaded(this.entry);
  }

  /** Forward pass(es) of one RGB image: one logits map per scale (and flipped copy). */
  async infer(image: RawImage, opts: Partial<InferOptions>): Promise<ScoreMap[]> {
    this.check();
    await this.cache.ensureLoaded(this.entry);
    // Send a copy: the caller keeps the original RawImage for msg.image.
    const data = new Uint8Array(image.data);
    const args: InferArgs = { key: this.entry.workerKey, image: { ...image, data }, plan: opts as InferArgs['plan'] };
    return this.entry.slot!.run<ScoreMap[]>('model.infer', args, [data.buffer]);
  }

  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    return this.cache.release(this.entry);
  }

  private check(): void {
    if (this.released) throw new Error('model handle used after release');
  }
}

export class ModelCache {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;

  constructor(private readonly pool: WorkerPool = getPool()) {}

  /** A handle on the model for this config; loading starts at once. */
  acquire(config: Parameters<typeof normalizeModelConfig>[0]): ModelHandle {
    const c = normalizeModelConfig(config);
    const key = modelKey(c);
    let e = this.entries.get(key);
    if (!e) {
      e = { key, workerKey: `${key}#${++this.generation}`, config: c, refs: 0, loads: 0 };
      this.entries.set(key, e);
    }
    e.refs++;
    const handle = new ModelHandle(this, e);
    // Start loading now; errors surface through ready()/infer().
    this.ensureLoaded(e).catch(() => undefined);
    return handle;
  }

  ensureLoaded(e: Entry): Promise<LoadResult> {
    if (e.slot && !e.slot.alive) {
      e.slot = undefined;
      e.loading = undefined;
    }
    if (!e.loading) {
      const slot = this.pool.pick(e.config.backend);
      slot.models++;
      e.slot = slot;
      e.loads++;
      e.loading = slot.run<LoadResult>('model.load', { key: e.workerKey, config: e.config }).then(async (info) => {
        if (e.swappedFrom) await slot.run('model.swap', { key: e.workerKey, ...e.swappedFrom });
        e.info = info;
        return info;
      });
      e.loading.catch(() => {
        // A failed load is retried by the next request rather than cached forever.
        if (e.slot === slot) {
          slot.models--;
          e.slot = undefined;
          e.loading = undefined;
        }
      });
    }
    return e.loading;
  }

  async release(e: Entry): Promise<void> {
    e.refs--;
    if (e.refs > 0) return;
    this.entries.delete(e.key);
    const slot = e.slot;
    e.slot = undefined;
    if (!slot) return;
    slot.models--;
    if (!slot.alive) return;
    await e.loading?.catch(() => undefined);
    await slot.run('model.release', { key: e.workerKey }).catch(() => undefined);
  }

  /** Hot swap: every model built from this spec takes the checkpoint's weights. */
  async publish(source: { dir?: string; url?: string }, match: (c: ModelConfig) => boolean): Promise<number> {
    let n = 0;
    for (const e of this.entries.values()) {
      if (!match(e.config)) continue;
      await this.ensureLoaded(e);
      await e.slot!.run('model.swap', { key: e.workerKey, ...source });
      e.swappedFrom = source;
      n++;
    }
    return n;
  }

  /** Asks the worker holding this model to save it in our format. */
  async save(handle: ModelHandle, dir: string, meta?: Record<string, unknown>): Promise<void> {
    const e = this.entries.get(handle.key);
    if (!e) throw new Error('model is not in the cache');
    await this.ensureLoaded(e);
    await e.slot!.run('model.save', { key: e.workerKey, dir, meta });
  }

  stats(): CacheStats[] {
    return [...this.entries.values()].map((e) => ({ key: e.key, refs: e.refs, loads: e.loads, worker: e.slot?.id }));
  }
}

let shared: ModelCache | undefined;
export function getModelCache(): ModelCache {
  if (!shared) shared = new ModelCache();
  return shared;
}
