/** Messages between the main thread and compute workers. */
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

export interface WorkerInit {
  backend: string;
}

/** Collects the distinct ArrayBuffers under typed arrays so they can be transferred. */
export function transferablesOf(...views: (ArrayBufferView | undefined)[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const v of views) {
    if (v && v.buffer instanceof ArrayBuffer && v.byteLength === v.buffer.byteLength) out.add(v.buffer);
  }
  return [...out];
}
