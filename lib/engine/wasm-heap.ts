/**
 * Our own WebAssembly kernels working in place on the tensors of tfjs's wasm backend: modules
 * emitted at run time (lib/runtime/wasm-emitter) import the backend's WebAssembly.Memory, so a
 * kernel reads its inputs and writes its outputs at the tensors' heap offsets, with no copy in
 * or out. Outputs are allocated by the backend (makeOutput) and handed to tfjs as tensors, so
 * they are freed like any other.
 *
 * Relies on tfjs-backend-wasm 4.x internals (the Emscripten module's exported `memory`, the
 * backend's dataIdMap and makeOutput); where any of them is missing, or the engine lacks SIMD,
 * `heapKernels` returns undefined and callers keep their composed kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { Fn, MAX_PAGES, moduleBytes } from '../runtime/wasm-emitter';

interface WasmBackendInternals {
  wasm?: { asm?: { memory?: unknown } };
  dataIdMap?: { get(id: tf.DataId): { memoryOffset: number } | undefined };
  makeOutput?(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** The active backend's internals when it is tfjs-wasm with an exported memory. */
function internals(): { backend: Required<Pick<WasmBackendInternals, 'dataIdMap' | 'makeOutput'>>; memory: WebAssembly.Memory } | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const b = tf.backend() as unknown as WasmBackendInternals;
  const memory = b.wasm?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory) || !b.dataIdMap || typeof b.makeOutput !== 'function') return undefined;
  return { backend: b as Required<Pick<WasmBackendInternals, 'dataIdMap' | 'makeOutput'>>, memory };
}

/** A tiny module using f32x4: whether this engine runs WebAssembly SIMD. */
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
let simdSupported: boolean | undefined;
export function wasmSimdSupported(): boolean {
  if (simdSupported === undefined) {
    try {
      simdSupported = WebAssembly.validate(SIMD_PROBE);
    } catch {
      simdSupported = false;
    }
  }
  return simdSupported;
}

/** Switch for tests and benches: false makes heapKernels answer undefined (the composed fallbacks run). */
export const heapKernelOptions = { enabled: true };

const compiled = new WeakMap<WebAssembly.Memory, Map<string, WebAssembly.Exports | null>>();

/**
 * The exports of the module `build()` emits, instantiated on the active tfjs-wasm memory (cached
 * per memory and `key`), or undefined where our heap kernels cannot run.
 */
export function heapKernels<T>(key: string, build: () => Fn[]): T | undefined {
  if (!heapKernelOptions.enabled || !wasmSimdSupported()) return undefined;
  const b = internals();
  if (!b) return undefined;
  let byKey = compiled.get(b.memory);
  if (!byKey) {
    byKey = new Map();
    compiled.set(b.memory, byKey);
  }
  let instance = byKey.get(key);
  if (instance === undefined) {
    // tfjs-wasm's threaded build runs on a shared memory: the import must say so.
    const shared = typeof SharedArrayBuffer !== 'undefined' && b.memory.buffer instanceof SharedArrayBuffer;
    try {
      const mod = new WebAssembly.Module(moduleBytes(build(), 1, MAX_PAGES, shared));
      instance = new WebAssembly.Instance(mod, { env: { mem: b.memory } }).exports;
    } catch {
      // A memory this module cannot import: the composed kernels run instead (remembered).
      instance = null;
    }
    byKey.set(key, instance);
  }
  return (instance ?? undefined) as unknown as T | undefined;
}

/** Whether tensors can be read and written on the tfjs-wasm heap here (heapTensor, heapF32). */
export function heapAvailable(): boolean {
  return heapKernelOptions.enabled && internals() !== undefined;
}

/** Byte offset of a tensor's data in the tfjs-wasm heap. */
export function heapOffset(t: tf.TensorInfo): number {
  const entry = internals()?.backend.dataIdMap.get(t.dataId);
  if (!entry) throw new Error('heapOffset: the tensor has no data on the wasm backend');
  return entry.memoryOffset;
}

/** A new tensor of the wasm backend, its data uninitialised (a kernel fills it). */
export function heapTensor<R extends tf.Rank>(shape: number[], dtype: 'float32' | 'int32' = 'float32'): tf.Tensor<R> {
  const b = internals();
  if (!b) throw new Error('heapTensor: the active backend is not tfjs-wasm');
  return tf.engine().makeTensorFromTensorInfo(b.backend.makeOutput(shape, dtype)) as tf.Tensor<R>;
}

/** A float32 view of `length` elements at a byte offset of the heap (valid until the heap grows). */
export function heapF32(offset: number, length: number): Float32Array {
  return new Float32Array(internals()!.memory.buffer, offset, length);
}
