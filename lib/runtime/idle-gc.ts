/**
 * A garbage collection when a compute worker has gone quiet. V8 collects when a thread allocates;
 * an idle worker allocates nothing, so the buffers of its last job (a 4000x3000 CRF's working
 * memory, which the CRF lets go after its own idle time; upsampled maps) stay in the process's RSS
 * until the next job. One full collection after a quiet spell hands them back to the system
 * (measured: a dropped 1 GB Float32Array in a worker, RSS 1004 -> 51 MB).
 */
import * as v8 from 'v8';
import * as vm from 'vm';

/** Quiet time before the collection (the worker also releases the CRF's kept memory then). */
export const DEFAULT_IDLE_GC_MS = 35_000;

let gcFn: (() => void) | null | undefined;

/** Runs a full collection; false where the runtime offers no way to ask for one. */
export function collectGarbage(): boolean {
  if (gcFn === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    try {
      // Without --expose-gc: the flag set now exposes gc() in contexts created afterwards.
      if (typeof exposed !== 'function') v8.setFlagsFromString('--expose-gc');
      gcFn = typeof exposed === 'function' ? exposed : (vm.runInNewContext('gc') as () => void);
    } catch {
      gcFn = null;
    }
  }
  if (!gcFn) return false;
  gcFn();
  return true;
}

/** DEEPLAB_WORKER_IDLE_GC_MS: the quiet time in ms (0 turns the collection off). */
export function idleGcDelay(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.DEEPLAB_WORKER_IDLE_GC_MS;
  if (raw === undefined || raw === '') return DEFAULT_IDLE_GC_MS;
  const ms = Number(raw);
  if (!(Number.isFinite(ms) && ms >= 0)) throw new Error(`DEEPLAB_WORKER_IDLE_GC_MS must be a number of milliseconds >= 0, got "${raw}"`);
  return ms;
}

/** Collects once, `delayMs` after the last touch (the end of the last job); cancel() when a job starts. */
export class IdleCollector {
  private timer?: NodeJS.Timeout;
  collections = 0;

  /** `collect` may be asynchronous (a worker first waits for what it releases to be let go). */
  constructor(private readonly delayMs: number, private readonly collect: () => boolean | Promise<boolean> = collectGarbage) {}

  touch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.delayMs <= 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void Promise.resolve(this.collect()).then((done) => {
        if (done) this.collections++;
      }, () => undefined);
    }, this.delayMs);
    this.timer.unref(); // never what keeps a thread alive
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
