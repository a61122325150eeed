/** Messages between the main thread and compute workers (the pool's side and worker-main's). */
export interface TaskRequest {
  id: number;
  task: string;
  args: unknown;
}

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

export type TaskReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: SerializedError };

/** What a task returns: its result and the buffers to move (not copy) back to the caller. */
export interface TaskOutput<T = unknown> {
  result: T;
  transfer?: ArrayBuffer[];
}

/** A table of tasks by name: what a worker runs, and (as a type) what the pool may ask of it. */
export type TaskTable = Record<string, (args: never) => TaskOutput | Promise<TaskOutput>>;

/** The argument type of task K. */
export type ArgsOf<M extends TaskTable, K extends keyof M> = Parameters<M[K]> extends [] ? null : Parameters<M[K]>[0];

/** The result type of task K (what the caller's promise resolves with). */
export type ResultOf<M extends TaskTable, K extends keyof M> = Awaited<ReturnType<M[K]>> extends TaskOutput<infer R> ? R : never;

/** Asks a worker to exit between tasks (see WorkerSlot.terminate). */
export interface ExitRequest {
  exit: true;
}

export interface WorkerInit {
  backend: string;
  /** The pool's size: ONNX Runtime's threads per session are the cores divided by it. */
  workers?: number;
  /**
   * Extra modules whose `TASKS` table the worker adds to its own. Only tests set it (their
   * echo / sleep / barrier tasks); production workers run lib/compute/tasks alone.
   */
  taskModules?: string[];
}

/** Collects the distinct ArrayBuffers under typed arrays so they can be transferred. */
export function transferablesOf(...views: (ArrayBufferView | undefined)[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of views) {
    if (v && v.buffer instanceof ArrayBuffer && v.byteLength === v.buffer.byteLength) out.add(v.buffer);
  }
  return [...out];
}
