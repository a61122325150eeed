/**
 * Backend choice for the one tfjs instance of this thread.
 * `auto`: tfjs-node-gpu, then tfjs-node (both optional, installed by the user), then wasm, then cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { registerTrainingKernels } from './wasm-grad-kernels';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** tfjs-node 4.22 calls util helpers that Node 23 removed; put them back before requiring it. */
export function polyfillNodeUtil(): void {
  // The real module object: an ES namespace import would be a read-only copy.
  const u = require('util') as Record<string, unknown>;
  const fills: Record<string, (v: unknown) => boolean> = {
    isArray: Array.isArray,
    isBoolean: (v) => typeof v === 'boolean',
    isBuffer: (v) => Buffer.isBuffer(v),
    isDate: (v) => v instanceof Date,
    isError: (v) => v instanceof Error,
    isFunction: (v) => typeof v === 'function',
    isNull: (v) => v === null,
    isNullOrUndefined: (v) => v === null || v === undefined,
    isNumber: (v) => typeof v === 'number',
    isObject: (v) => v !== null && typeof v === 'object',
    isPrimitive: (v) => v === null || (typeof v !== 'object' && typeof v !== 'function'),
    isRegExp: (v) => v instanceof RegExp,
    isString: (v) => typeof v === 'string',
    isSymbol: (v) => typeof v === 'symbol',
    isUndefined: (v) => v === undefined,
  };
  for (const [name, fn] of Object.entries(fills)) {
    if (typeof u[name] !== 'function') u[name] = fn;
  }
}

function tryRequire(name: string): boolean {
  try {
    require(name);
    return true;
  } catch {
    return false;
  }
}

let tensorflowLoaded: boolean | undefined;
/** Loads the native TensorFlow backend if the user installed tfjs-node-gpu or tfjs-node. */
function loadNativeBackend(): boolean {
  if (tensorflowLoaded === undefined) {
    polyfillNodeUtil();
    tensorflowLoaded = tryRequire('@tensorflow/tfjs-node-gpu') || tryRequire('@tensorflow/tfjs-node');
  }
  return tensorflowLoaded && tf.findBackendFactory('tensorflow') !== null;
}

let wasmLoaded = false;
function loadWasmBackend(): boolean {
  if (!wasmLoaded) wasmLoaded = tryRequire('@tensorflow/tfjs-backend-wasm');
  return wasmLoaded && tf.findBackendFactory('wasm') !== null;
}

/** Resolves the preference from the argument, else DEEPLAB_BACKEND, else auto. */
export function resolvePreference(pref?: string): BackendPreference {
  const p = (pref && pref !== 'default' ? pref : process.env.DEEPLAB_BACKEND || 'auto').toLowerCase();
  if (p === 'node' || p === 'tfjs-node' || p === 'gpu') return 'tensorflow';
  if ((BACKEND_PREFERENCES as string[]).includes(p)) return p as BackendPreference;
  throw new Error(`unknown backend "${pref ?? process.env.DEEPLAB_BACKEND}": expected one of ${BACKEND_PREFERENCES.join(', ')}`);
}

async function trySet(name: string): Promise<boolean> {
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/** Activates a backend for this thread; returns the name of the one in use. */
export async function initBackend(pref?: string): Promise<string> {
  const want = resolvePreference(pref);
  const order: string[] = want === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [want];
  for (const name of order) {
    if (name === 'tensorflow' && !loadNativeBackend()) continue;
    if (name === 'wasm' && !loadWasmBackend()) continue;
    if (tf.getBackend() === name || (await trySet(name))) {
      await tf.ready();
      registerTrainingKernels(tf.getBackend());
      return tf.getBackend();
    }
  }
  if (want === 'tensorflow') {
    throw new Error('backend "tensorflow" requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed (npm install @tensorflow/tfjs-node)');
  }
  throw new Error(`backend "${want}" could not be initialised`);
}

export { tf };
