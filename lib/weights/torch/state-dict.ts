/**
 * From a checkpoint's unpickled value to its state dict: unwrap the usual training-script wrappers,
 * strip DataParallel's `module.`, keep the other scalar entries as metadata, then read each storage
 * the tensors use (once, one at a time) and cut the tensors out of it as contiguous float32.
 */
import { gather, numelOf, TorchDtype } from './dtypes';
import { TensorRef } from './globals';
import { describe, PyDict } from './pickle';
import { Container } from './zip';

export interface HostTensor {
  shape: number[];
  /** The element type in the file; `data` holds the values converted to float32. */
  dtype: TorchDtype;
  /** Values, contiguous row-major. */
  data: Float32Array;
}

export type Scalar = number | string | boolean;

/** The keys training scripts keep the model's state dict under, in the order they are tried. */
export const CONTAINER_KEYS = ['state_dict', 'model', 'model_state', 'model_state_dict', 'net', 'network'];

/** A tensor with more elements than this, made from a smaller storage by zero strides, is refused as absurd. */
const MAX_EXPANDED = 1 << 24;
/** Float32Array's limit on this platform, and far beyond any weight tensor. */
const MAX_NUMEL = 2 ** 31 - 1;

export interface Unwrapped {
  tensors: [string, TensorRef][];
  container?: string;
  meta: Record<string, Scalar>;
}

function scalar(v: unknown): Scalar | undefined {
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v.toString();
  return undefined;
}

function tensorsOf(d: PyDict): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  for (const [k, v] of d) if (v instanceof TensorRef) out.push([String(k), v]);
  return out;
}

/** Finds the state dict in a checkpoint's value; throws saying what the value is when there is none. */
export function unwrapStateDict(value: unknown): Unwrapped {
  if (!(value instanceof PyDict)) throw new Error(`the checkpoint holds a ${describe(value)}, not a state dict`);
  const meta: Record<string, Scalar> = {};
  let tensors = tensorsOf(value);
  let container: string | undefined;
  let dict = value;
  if (tensors.length === 0) {
    for (const key of CONTAINER_KEYS) {
      const inner = value.get(key);
      if (inner instanceof PyDict && tensorsOf(inner).length) {
        container = key;
        dict = inner;
        tensors = tensorsOf(inner);
        break;
      }
    }
  }
  if (tensors.length === 0) {
    const keys = [...value.keys()].slice(0, 8).map(String);
    throw new Error(`the checkpoint holds no tensors (a dict of ${value.size}: ${keys.join(', ')}${value.size > keys.length ? ', ...' : ''}), and none of ${CONTAINER_KEYS.join(', ')} holds a state dict`);
  }
  // Scalars beside the state dict (epoch, best_pred, arch) and any in the state dict itself.
  for (const d of container ? [value, dict] : [value]) {
    for (const [k, v] of d) {
      const s = scalar(v);
      if (s !== undefined) meta[String(k)] = s;
    }
  }
  // nn.DataParallel saves every key as module.<name>; strip it only when all carry it.
  if (tensors.every(([k]) => k.startsWith('module.'))) tensors = tensors.map(([k, t]) => [k.slice('module.'.length), t]);
  return { tensors, container, meta };
}

/** Refuses a tensor whose view leaves its storage or expands absurdly, before any byte is read. */
function checkView(name: string, t: TensorRef): void {
  const n = numelOf(t.size);
  if (n > MAX_NUMEL) throw new Error(`tensor "${name}" has ${n} elements (size [${t.size}]), beyond what can be read`);
  if (n === 0) return;
  let last = t.offset;
  for (let d = 0; d < t.size.length; d++) last += (t.size[d] - 1) * t.stride[d];
  if (last >= t.storage.numel) {
    throw new Error(`tensor "${name}" (size [${t.size}], stride [${t.stride}], offset ${t.offset}) reaches element ${last} of ${t.storage.describe()}`);
  }
  if (n > t.storage.numel && n > MAX_EXPANDED) {
    throw new Error(`tensor "${name}" expands ${t.storage.numel} stored elements to ${n} (size [${t.size}], stride [${t.stride}])`);
  }
}

export interface ReadStats {
  /** Storages read / held by the file; bytes of storage data read. */
  storagesRead: number;
  storagesTotal: number;
  bytesRead: number;
}

/** Reads the storages the tensors use and returns the tensors, in the state dict's order. */
export async function materialize(tensors: [string, TensorRef][], c: Container): Promise<{ tensors: Map<string, HostTensor>; stats: ReadStats }> {
  const byStorage = new Map<string, number[]>();
  tensors.forEach(([name, t], i) => {
    checkView(name, t);
    const list = byStorage.get(t.storage.key) ?? [];
    list.push(i);
    byStorage.set(t.storage.key, list);
  });
  const data: (Float32Array | undefined)[] = new Array(tensors.length);
  const bytesRead = await c.readStorages(new Set(byStorage.keys()), (key, bytes) => {
    for (const i of byStorage.get(key) ?? []) {
      const t = tensors[i][1];
      data[i] = gather(bytes, t.storage.dtype, t.storage.offset + t.offset, t.size, t.stride);
    }
  });
  const out = new Map<string, HostTensor>();
  tensors.forEach(([name, t], i) => {
    const values = data[i];
    if (!values) throw new Error(`tensor "${name}" was not read (its storage ${t.storage.key} is missing)`);
    if (out.has(name)) throw new Error(`the state dict holds "${name}" twice`);
    out.set(name, { shape: [...t.size], dtype: t.storage.dtype, data: values });
  });
  return { tensors: out, stats: { storagesRead: byStorage.size, storagesTotal: c.storageCount, bytesRead } };
}
