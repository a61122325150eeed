/**
 * The process-wide pool of compute workers. The main thread (Node-RED's event loop) only
 * routes messages; forward passes, upsampling, fusion and the CRF run in these threads.
 * Callers go through lib/compute/client (or the model cache), never through run() by name.
 */
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { resolvePreference, tfjsPreferenceOf } from '../engine/backend';
import { ArgsOf, ResultOf, SerializedError, TaskReply, TaskTable, WorkerInit } from './protocol';
import type { Tasks } from './tasks';

export interface PoolOptions {
  /** Modules whose TASKS the workers add to their own (tests only; see WorkerInit). */
  taskModules?: string[];
}

export interface RunOptions<M extends TaskTable = Tasks> {
  /** Buffers moved to the worker (the caller's views become empty). */
  transfer?: ArrayBuffer[];
  /** Run on this worker (a model's tasks go to the worker that holds it). */
  slot?: WorkerSlot<M>;
  /** Backend preference when the pool picks the worker. */
  backend?: string;
}

function reviveError(e: SerializedError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}

let nextSlotId = 1;

/** One worker thread and its in-flight tasks. */
export class WorkerSlot<M extends TaskTable = Tasks> {
  readonly id = nextSlotId++;
  readonly worker: Worker;
  readonly preference: string;
  alive = true;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Tasks sent and not answered: the pool's measure of how busy this worker is. */
  get load(): number {
    return this.pending.size;
  }
  /** Models pinned to this worker (weighted into placement). */
  models = 0;

  constructor(preference: string, options: PoolOptions & { workers?: number }, private readonly onExit: (slot: WorkerSlot<M>) => void) {
    this.preference = preference;
    const init: WorkerInit = { backend: preference, workers: options.workers, taskModules: options.taskModules };
    this.worker = new Worker(path.join(__dirname, 'worker-main.js'), { workerData: init });
    this.worker.unref();
    this.worker.on('message', (reply: TaskReply) => this.settle(reply));
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`compute worker exited with code ${code}`)));
  }

  run<K extends keyof M & string>(task: K, args: ArgsOf<M, K>, transfer: ArrayBuffer[] = []): Promise<ResultOf<M, K>> {
    if (!this.alive) return Promise.reject(new Error('compute worker is not running'));
    const id = this.nextId++;
    return new Promise<ResultOf<M, K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ id, task, args }, transfer);
    });
  }

  private settle(reply: TaskReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.ok) p.resolve(reply.result);
    else p.reject(reviveError(reply.error));
  }

  private die(err: Error): void {
    if (!this.alive) return;
    this.alive = false;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.onExit(this);
  }

  /**
   * Ends the worker. A worker with tasks in flight is asked to exit rather than terminated: it
   * finishes the task in hand, answers it and exits before the next (a terminate() while ONNX
   * Runtime is inside a run aborts the whole process, measured with onnxruntime-node 1.30); the
   * tasks queued behind are rejected. One that does not exit within `graceMs` (a task stuck in
   * JavaScript) is terminated.
   */
  async terminate(graceMs = 60_000): Promise<void> {
    this.alive = false;
    if (this.pending.size === 0) {
      await this.worker.terminate();
      return;
    }
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    try {
      this.worker.postMessage({ exit: true });
    } catch {
      // Already gone.
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
      timer.unref();
    });
    const r = await Promise.race([exited, late]);
    if (timer) clearTimeout(timer);
    if (r === 'late') await this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new Error('compute worker was closed'));
    this.pending.clear();
  }
}

export class WorkerPool<M extends TaskTable = Tasks> {
  private readonly slots: WorkerSlot<M>[] = [];

  constructor(readonly size: number, private readonly options: PoolOptions = {}) {}

  /**
   * The least busy worker for a backend preference, starting one while below the size. Workers are
   * told apart by the tfjs backend they run: a model on ONNX Runtime shares them with tfjs models.
   */
  pick(backend?: string): WorkerSlot<M> {
    const pref = tfjsPreferenceOf(resolvePreference(backend));
    const same = this.slots.filter((s) => s.alive && s.preference === pref);
    const idle = same.find((s) => s.load === 0 && s.models === 0);
    if (idle) return idle;
    if (same.length < this.size) {
      const slot = new WorkerSlot<M>(pref, { ...this.options, workers: this.size }, (s) => this.remove(s));
      this.slots.push(slot);
      return slot;
    }
    return same.reduce((a, b) => (b.load + b.models < a.load + a.models ? b : a));
  }

  run<K extends keyof M & string>(task: K, args: ArgsOf<M, K>, opts: RunOptions<M> = {}): Promise<ResultOf<M, K>> {
    const slot = opts.slot ?? this.pick(opts.backend);
    return slot.run(task, args, opts.transfer);
  }

  get workers(): readonly WorkerSlot<M>[] {
    return this.slots;
  }

  /** Whether any worker has a task in flight (a CRF then keeps to one thread, see client.crf). */
  get busy(): boolean {
    return this.slots.some((s) => s.load > 0);
  }

  private remove(slot: WorkerSlot<M>): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
  }

  async close(): Promise<void> {
    const all = this.slots.splice(0);
    await Promise.all(all.map((s) => s.terminate()));
  }
}

function defaultSize(): number {
  const env = Number(process.env.DEEPLAB_WORKERS);
  if (Number.isInteger(env) && env > 0) return env;
  return Math.max(1, Math.min(2, os.availableParallelism?.() ?? os.cpus().length));
}

let shared: WorkerPool | undefined;
/** The one pool of this process, shared by every node. */
export function getPool(): WorkerPool {
  if (!shared) shared = new WorkerPool(defaultSize());
  return shared;
}
