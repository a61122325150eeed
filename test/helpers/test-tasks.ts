/**
 * Worker tasks for tests only: a compute worker adds them when its pool is made with
 * `taskModules: [TEST_TASKS]` (production pools never name a module). Echo, sleep and failure
 * exercise the pool itself; the barrier proves that two tasks run at the same time; the model
 * list looks into the model host.
 */
import { loadedKeys } from '../../lib/compute/model-host';
import { TaskOutput, TaskTable } from '../../lib/compute/protocol';
import type { Tasks } from '../../lib/compute/tasks';

export const TEST_TASKS = __filename;

export const TASKS = {
  'test.echo': (a: { data: Float32Array }): TaskOutput<{ data: Float32Array }> => ({ result: a, transfer: [a.data.buffer as ArrayBuffer] }),
  'test.sleep': async (a: { ms: number }): Promise<TaskOutput<number>> => {
    await new Promise((r) => setTimeout(r, a.ms));
    return { result: a.ms };
  },
  'test.fail': (a: { message: string }): TaskOutput<never> => {
    throw new Error(a.message);
  },
  /**
   * Arrives at a barrier of `parties` in shared memory and blocks this worker until all have
   * arrived, or `timeoutMs` passed. Returns how many had arrived when it left: `parties` only
   * if the others ran at the same time (one worker running them in turn would time out first).
   */
  'test.barrier': (a: { counter: SharedArrayBuffer; parties: number; timeoutMs: number }): TaskOutput<number> => {
    const c = new Int32Array(a.counter);
    Atomics.add(c, 0, 1);
    Atomics.notify(c, 0);
    const deadline = Date.now() + a.timeoutMs;
    for (let seen = Atomics.load(c, 0); seen < a.parties; seen = Atomics.load(c, 0)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      Atomics.wait(c, 0, seen, left);
    }
    return { result: Atomics.load(c, 0) };
  },
  'model.list': (): TaskOutput<string[]> => ({ result: loadedKeys() }),
  /** Fills `mb` MB that become garbage when the task returns; the result is the RSS while they were held. */
  'test.garbage': (a: { mb: number }): TaskOutput<number> => {
    const big = new Float32Array((a.mb << 20) / 4).fill(1);
    return { result: process.memoryUsage().rss + big[0] - 1 };
  },
} satisfies TaskTable;

/** What a test pool's workers run: the production tasks and these. */
export type TestTasks = Tasks & typeof TASKS;
