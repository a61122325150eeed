/**
 * Backend choice for the one tfjs instance of this thread, and the engine preferences a model
 * config names (lib/engine/engine-choice decides the engine per model).
 * tfjs `auto`: tfjs-node-gpu, then tfjs-node (both optional, installed by the user), then wasm, then cpu.
 */
import * as tf from '@tensorflow/tfjs';
import { registerTrainingKernels } from './wasm-grad-kernels';

/** The tfjs backends a thread can run. */
export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/**
 * What a model config (or DEEPLAB_BACKEND) may ask for: a tfjs backend, or ONNX Runtime
 * (`onnxruntime`: CUDA when its provider is installed and loads, else CPU; `onnxruntime-cuda`:
 * asks for CUDA, falling back to CPU and saying so; `onnxruntime-cpu`). `auto` picks per model.
 */
export type EnginePreference = BackendPreference | 'onnxruntime' | 'onnxruntime-cuda' | 'onnxruntime-cpu';
export const ENGINE_PREFERENCES: EnginePreference[] = [...BACKEND_PREFERENCES, 'onnxruntime', 'onnxruntime-cuda', 'onnxruntime-cpu'];

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

let nativePackage: string | null | undefined;
/** Loads the native TensorFlow backend if the user installed tfjs-node-gpu or tfjs-node. */
function loadNativeBackend(): boolean {
  if (nativePackage === undefined) {
    polyfillNodeUtil();
    nativePackage = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].find(tryRequire) ?? null;
  }
  return nativePackage !== null && tf.findBackendFactory('tensorflow') !== null;
}

/** Whether this thread's tfjs runs on tfjs-node-gpu (the `tensorflow` backend of the GPU package). */
export function tfjsOnGpu(): boolean {
  return tf.getBackend() === 'tensorflow' && nativePackage === '@tensorflow/tfjs-node-gpu';
}

let wasmLoaded = false;
function loadWasmBackend(): boolean {
  if (!wasmLoaded) wasmLoaded = tryRequire('@tensorflow/tfjs-backend-wasm');
  return wasmLoaded && tf.findBackendFactory('wasm') !== null;
}

function parsePreference(value: string, what: string): EnginePreference {
  const p = value.trim().toLowerCase();
  if (p === 'node' || p === 'tfjs-node' || p === 'gpu') return 'tensorflow';
  if (p === 'ort' || p === 'onnx') return 'onnxruntime';
  if ((ENGINE_PREFERENCES as string[]).includes(p)) return p as EnginePreference;
  throw new Error(`unknown backend "${what}": expected one of ${ENGINE_PREFERENCES.join(', ')}`);
}

/**
 * Resolves the preference: the argument, where it names a choice; DEEPLAB_BACKEND where the
 * argument is absent, `default` or `auto` (the environment sets what `auto` means for the whole
 * process: tests force an engine with it); else auto.
 */
export function resolvePreference(pref?: string): EnginePreference {
  const own = pref && pref !== 'default' ? parsePreference(pref, pref) : 'auto';
  if (own !== 'auto') return own;
  const env = process.env.DEEPLAB_BACKEND;
  return env ? parsePreference(env, env) : 'auto';
}

/** The tfjs backend a thread serving this preference runs (ONNX Runtime's threads still pre- and post-process on tfjs). */
export function tfjsPreferenceOf(pref: EnginePreference): BackendPreference {
  return pref.startsWith('onnxruntime') ? 'auto' : (pref as BackendPreference);
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
  const want = tfjsPreferenceOf(resolvePreference(pref));
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
