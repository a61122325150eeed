/**
 * Entry point of the data thread of a training run: decodes and augments batches ahead of the
 * compute and posts them (buffers transferred, not copied). Flow control by credits: the
 * training side grants one credit per batch it can hold, so at most `prefetch` batches wait.
 */
import { parentPort, workerData } from 'worker_threads';
import { DataSpec } from './config';
import { BatchRecipe, makeBatch, openSource, SampleOrder } from './data';

export interface DataWorkerInit {
  spec: DataSpec;
  recipe: BatchRecipe;
  startSeq: number;
  credits: number;
  cacheBytes?: number;
}

export type DataWorkerIn = { type: 'credit'; n: number } | { type: 'stop' };

const port = parentPort;
if (!port) throw new Error('data-worker must run in a worker thread');
const init = workerData as DataWorkerInit;

let credits = init.credits;
let stopped = false;
let wake: (() => void) | undefined;

port.on('message', (m: DataWorkerIn) => {
  if (m.type === 'credit') credits += m.n;
  else stopped = true;
  wake?.();
});

async function main(): Promise<void> {
  const source = await openSource(init.spec, init.cacheBytes);
  const order = new SampleOrder(source.count, init.recipe.seed);
  let seq = init.startSeq;
  while (!stopped) {
    if (credits <= 0) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    credits--;
    const t0 = performance.now();
    const batch = await makeBatch(source, order, seq++, init.recipe);
    port!.postMessage({ type: 'batch', batch, ms: performance.now() - t0 }, [batch.images.buffer as ArrayBuffer, batch.labels.buffer as ArrayBuffer]);
  }
}

main().catch((err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  port.postMessage({ type: 'error', message: e.message, name: e.name });
});
