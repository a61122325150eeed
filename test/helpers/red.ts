/** node-red-node-test-helper, typed for our tests, started on Node-RED 4.1 from devDependencies. */
const helper = require('node-red-node-test-helper') as TestHelper;
helper.init(require.resolve('node-red'));

export interface TestNode {
  id: string;
  receive(msg: Record<string, unknown>): void;
  /** 'input' gives the messages a helper node receives; 'call:<method>' the calls of a spied method (error, status...). */
  on<T = unknown>(event: string, cb: (arg: T) => void): void;
  once<T = unknown>(event: string, cb: (arg: T) => void): void;
  removeListener<T = unknown>(event: string, cb: (arg: T) => void): void;
  status: { (s: unknown): void; lastCall?: { args: unknown[] } };
}

export interface TestHelper {
  init(path: string): void;
  /** One node module or several. */
  load(nodes: unknown, flow: unknown[], done?: () => void): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): TestNode;
  startServer(done: () => void): void;
  stopServer(done: () => void): void;
}

export { helper };

export const catchNode = require('@node-red/nodes/core/common/25-catch.js');

/**
 * How long a wait for a node's output may take before it counts as a hang (as mocha's timeout):
 * never a bound on how fast the compute behind it runs.
 */
export const HANG_MS = 600_000;

/** Resolves with the next message a helper node receives (or rejects after ms: a hang). */
export function nextMessage<T = Record<string, unknown>>(node: TestNode, ms = HANG_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
    node.on('input', (msg) => {
      clearTimeout(t);
      resolve(msg as T);
    });
  });
}

/** Collects `n` messages. */
export function messages<T = Record<string, unknown>>(node: TestNode, n: number, ms = HANG_MS): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    const t = setTimeout(() => reject(new Error(`got ${got.length} of ${n} messages within ${ms} ms`)), ms);
    node.on('input', (msg) => {
      got.push(msg as T);
      if (got.length === n) {
        clearTimeout(t);
        resolve(got);
      }
    });
  });
}

/** The status objects a node set, in order (the helper emits them as events). */
export function statusLog(node: TestNode): { fill?: string; text?: string }[] {
  const log: { fill?: string; text?: string }[] = [];
  node.on('call:status', (call) => log.push((call as { args: [{ fill?: string; text?: string }] }).args[0]));
  return log;
}
