/**
 * The thin layer every node shares: status conventions, input handling that routes errors
 * to Catch nodes, message properties by path, and config values with defaults (flows written
 * by hand or by older versions may omit any property).
 */
import * as path from 'path';
import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow } from 'node-red';
import { expectRawImage, RawImage } from '../../lib/contract';

// The example flows and the demo find their sample pictures through this variable (`env.get` in
// function nodes, `${...}` in properties); unless set, it points at this package's own sample-data/
// (kept out of examples/, where Node-RED's Import > Examples would list its folders as examples).
if (!process.env.DEEPLAB_SAMPLES_DIR) process.env.DEEPLAB_SAMPLES_DIR = path.join(__dirname, '..', '..', '..', 'sample-data');

export type Msg = NodeMessageInFlow & Record<string, unknown>;
export type Send = (msg: NodeMessage | (NodeMessage | NodeMessage[] | null)[]) => void;

export type StatusKind = 'idle' | 'loading' | 'busy' | 'ok' | 'warn' | 'error';

const STATUS_STYLE: Record<StatusKind, { fill: 'grey' | 'yellow' | 'blue' | 'green' | 'red'; shape: 'dot' | 'ring' }> = {
  idle: { fill: 'grey', shape: 'ring' },
  loading: { fill: 'yellow', shape: 'ring' },
  busy: { fill: 'blue', shape: 'dot' },
  ok: { fill: 'green', shape: 'dot' },
  warn: { fill: 'yellow', shape: 'dot' },
  error: { fill: 'red', shape: 'ring' },
};

/** The longest status text: Node-RED draws it on one line under the node. */
export const STATUS_MAX = 60;

/**
 * A text of at most `max` characters, shortened in the middle where longer: its start says what
 * happened and its end holds what varies most (a file name at the end of a path, a count).
 */
export function shortenMiddle(text: string, max = STATUS_MAX): string {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  const head = Math.floor((max - 1) * 0.45);
  const tail = max - 1 - head;
  return `${chars.slice(0, head).join('').trimEnd()}…${chars.slice(chars.length - tail).join('').trimStart()}`;
}

export function setStatus(node: Node, kind: StatusKind, text: string): void {
  node.status({ ...STATUS_STYLE[kind], text: shortenMiddle(text) });
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Registers an async input handler: a thrown error goes to node.error(err, msg) (so a Catch
 * node sees it), turns the status red, and never escapes to crash the process.
 */
export function onInput(node: Node, handler: (msg: Msg, send: Send) => Promise<void>): void {
  node.on('input', (msg: NodeMessageInFlow, send: Send, done: (err?: Error) => void) => {
    handler(msg as Msg, send).then(
      () => done(),
      (err: unknown) => {
        setStatus(node, 'error', errorText(err));
        node.error(err instanceof Error ? err : new Error(String(err)), msg);
        done();
      },
    );
  });
}

export function getProp(RED: NodeAPI, msg: Msg, path: string): unknown {
  return RED.util.getMessageProperty(msg, path);
}

export function setProp(RED: NodeAPI, msg: Msg, path: string, value: unknown): void {
  RED.util.setMessageProperty(msg, path, value, true);
}

/**
 * Reads a node's configuration; a bad value turns the status red and logs the error
 * instead of failing the node's creation (which would stop the whole flow from starting).
 */
export function readConfig<T>(node: Node, read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    setStatus(node, 'error', `config: ${errorText(err)}`);
    node.error(`invalid configuration: ${errorText(err)}`);
    return undefined;
  }
}

/** Rejects input while the configuration is invalid (a Catch node gets the reason). */
export function requireConfig<T>(cfg: T | undefined): T {
  if (cfg === undefined) throw new Error('this node is misconfigured (see its status and the log): fix and redeploy');
  return cfg;
}

/**
 * Reads a RawImage from msg (any accepted form) and puts it back with its data as a Buffer over
 * the same memory where it came otherwise (a Function node's Uint8Array), so the wires after this
 * node clone it in constant time (lib/contract).
 */
export function readImage(RED: NodeAPI, msg: Msg, path: string): RawImage {
  const given = getProp(RED, msg, path);
  const image = expectRawImage(given, `msg.${path}`);
  if (image !== given) setProp(RED, msg, path, image);
  return image;
}
