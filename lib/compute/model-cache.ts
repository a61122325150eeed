/**
 * The process-wide model cache, main-thread side. A model is keyed by its config, loaded
 * once into one compute worker (which then runs all its forward passes), shared by every
 * node that asks for it, and released when the last of them lets go.
 */
import { RawImage, ScoreMap } from '../contract';
import { InferOptions } from '../inference/plan';
import { ModelConfig, modelKey, normalizeModelConfig } from '../models/config';
import { defaultCacheDir, DownloadProgress, ensurePublished } from '../weights/download';
import { runsAsItIs } from '../weights/load';
import { hostedModel, LoadResult, SwapSource } from './client';
import { getPool, WorkerPool, WorkerSlot } from './pool';

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
  /** The last weights published since load (re-applied if the worker restarts). */
  swappedFrom?: SwapSource;
  /** Listeners of the load's progress (downloading published weights, then loading). */
  progress: Set<(p: LoadProgress) => void>;
}

/** What a long load is doing, for the status of the nodes waiting on it. */
export type LoadProgress = { phase: 'download'; download: DownloadProgress } | { phase: 'load' };

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

  /** Follows the load's progress (a download of published weights can take minutes); returns the unsubscribe. */
  onProgress(listener: (p: LoadProgress) => void): () => void {
    this.entry.progress.add(listener);
    return () => this.entry.progress.delete(listener);
  }

  /** Forward pass(es) of one RGB image: one logits map per scale (and flipped copy). */
  async infer(image: RawImage, opts: Partial<InferOptions>): Promise<ScoreMap[]> {
    this.check();
    await this.cache.ensureLoaded(this.entry);
    return hostedModel.infer(this.entry.slot!, this.entry.workerKey, image, opts);
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
      e = { key, workerKey: `${key}#${++this.generation}`, config: c, refs: 0, loads: 0, progress: new Set() };
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
      e.loading = this.download(e).then(() => {
        for (const l of e.progress) l({ phase: 'load' });
        return hostedModel.load(slot, e.workerKey, e.config);
      }).then(async (info) => {
        if (e.swappedFrom) await hostedModel.swap(slot, e.workerKey, e.swappedFrom);
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

  /**
   * Published weights are downloaded here, on the main thread (network I/O, no compute), so the
   * nodes can show the progress; the worker then converts the file once and loads it.
   */
  private async download(e: Entry): Promise<void> {
    const w = e.config.weights;
    if (w.source !== 'published') return;
    await ensurePublished(w.id, w.cacheDir || defaultCacheDir(), {
      onProgress: (download) => {
        for (const l of e.progress) l({ phase: 'download', download });
      },
    });
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
    await hostedModel.release(slot, e.workerKey).catch(() => undefined);
  }

  /**
   * Hot swap: every model built from this spec takes the checkpoint's weights. A TF.js graph or an ONNX
   * file is never one of them, whatever its config's spec says (the model host refuses a swap into it).
   */
  async publish(source: SwapSource, match: (c: ModelConfig) => boolean): Promise<number> {
    let n = 0;
    for (const e of this.entries.values()) {
      if (runsAsItIs(e.config.weights) || !match(e.config)) continue;
      await this.ensureLoaded(e);
      await hostedModel.swap(e.slot!, e.workerKey, source);
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
    await hostedModel.save(e.slot!, e.workerKey, dir, meta);
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
