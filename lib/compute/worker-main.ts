/** Entry point of a compute worker thread: sets up the backend, then runs tasks by name. */
import { parentPort, workerData } from 'worker_threads';
import { initBackend } from '../engine/backend';
import { releaseCrfMemory } from '../crf/dense-crf';
import { collectGarbage, IdleCollector, idleGcDelay } from '../runtime/idle-gc';
import { configureHost } from './model-host';
import { ExitRequest, TaskReply, TaskRequest, TaskTable, WorkerInit } from './protocol';
import { TASKS } from './tasks';

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('worker-main must run in a worker thread');

const table: TaskTable = { ...TASKS };
// Test-only task modules (see WorkerInit.taskModules); production never names any.
for (const file of init.taskModules ?? []) Object.assign(table, (require(file) as { TASKS: TaskTable }).TASKS);

configureHost({ workers: init.workers });
const ready = initBackend(init.backend);

// Tasks run one at a time in arrival order: tfjs kernels are synchronous anyway, and a
// strict order keeps a model's forward passes queued behind its load.
let chain: Promise<void> = Promise.resolve();
// What the last jobs left, and what the CRF keeps between runs, go back to the system once the
// worker has been quiet a while.
// Two collections a macrotask apart: the first leaves the last task's arguments (a 252 MB score map
// and a 36 MB image after a 4000x3000 photo, measured) to the second; the CRF's helper thread must
// have exited for the shared memory it was handed to go.
const idle = new IdleCollector(idleGcDelay(), async () => {
  await releaseCrfMemory();
  if (!collectGarbage()) return false;
  await new Promise((resolve) => setImmediate(resolve));
  return collectGarbage();
});
let pending = 0;
// Asked to exit while a task runs: the task in hand finishes and answers, the ones queued behind
// it never start. A task is several macrotasks (ONNX Runtime's run sits behind a setImmediate), so
// exiting on the message itself would cut the pass in flight; and the thread is only ever ended
// from JavaScript between macrotasks, never terminated while ONNX Runtime is inside a run (that
// aborts the whole process).
let exitAsked = false;

port.on('message', (req: TaskRequest | ExitRequest) => {
  if ('exit' in req) {
    exitAsked = true;
    if (pending === 0) process.exit(0);
    return;
  }
  pending++;
  idle.cancel();
  chain = chain.then(() => run(req)).finally(() => {
    if (--pending === 0) idle.touch();
  });
});

async function run(req: TaskRequest): Promise<void> {
  let reply: TaskReply;
  let transfer: ArrayBuffer[] = [];
  if (exitAsked) process.exit(0);
  try {
    await ready;
    const task = Object.prototype.hasOwnProperty.call(table, req.task) ? table[req.task] : undefined;
    if (!task) throw new Error(`unknown worker task "${req.task}"`);
    const out = await task(req.args as never);
    transfer = out.transfer ?? [];
    reply = { id: req.id, ok: true, result: out.result };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    reply = { id: req.id, ok: false, error: { name: e.name, message: e.message, stack: e.stack } };
  }
  port!.postMessage(reply, transfer);
  if (exitAsked) process.exit(0);
}
