/** A BatchLoader whose batches are decoded and augmented in their own thread (data-worker). */
import * as path from 'path';
import { Worker } from 'worker_threads';
import { ContractError } from '../contract';
import { DataSpec } from './config';
import { Batch, BatchLoader, BatchRecipe } from './data';
import type { DataWorkerIn, DataWorkerInit } from './data-worker';

type Out = { type: 'batch'; batch: Batch; ms: number } | { type: 'error'; message: string; name: string };

export class WorkerLoader implements BatchLoader {
  private readonly worker: Worker;
  private readonly ready: Batch[] = [];
  private waiting?: { resolve: (b: Batch) => void; reject: (e: Error) => void };
  private failure?: Error;
  private closed = false;
  /** Time spent preparing the batches received so far (ms, in the data thread). */
  prepareMs = 0;

  constructor(spec: DataSpec, recipe: BatchRecipe, startSeq: number, prefetch: number, cacheBytes?: number) {
    const init: DataWorkerInit = { spec, recipe, startSeq, credits: prefetch, cacheBytes };
    this.worker = new Worker(path.join(__dirname, 'data-worker.js'), { workerData: init });
    this.worker.on('message', (m: Out) => {
      if (m.type === 'batch') {
        this.prepareMs += m.ms;
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = undefined;
          this.grant();
          w.resolve(m.batch);
        } else this.ready.push(m.batch);
      } else {
        // ContractErrors (bad files, sizes) reach the user as they are.
        const e = m.name === 'ContractError' ? new ContractError(m.message) : new Error(m.message);
        this.fail(e);
      }
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`the data thread exited with code ${code}`));
    });
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    if (this.waiting) {
      this.waiting.reject(e);
      this.waiting = undefined;
    }
  }

  private grant(): void {
    if (!this.closed) this.worker.postMessage({ type: 'credit', n: 1 } satisfies DataWorkerIn);
  }

  next(): Promise<Batch> {
    const b = this.ready.shift();
    if (b) {
      this.grant();
      return Promise.resolve(b);
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('data loader is closed'));
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiting?.reject(new Error('data loader closed'));
    this.waiting = undefined;
    await this.worker.terminate();
  }
}
