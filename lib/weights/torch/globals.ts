/**
 * The globals a PyTorch checkpoint may name, each a pure data constructor written here (nothing of
 * Python's is imported or called), and the persistent ids that stand for storages. Anything else a
 * pickle names (os.system, builtins.eval, a model class) is an error that names it.
 */
import { halfValue, ITEM_SIZE, STORAGE_DTYPES, TorchDtype } from './dtypes';
import { describe, isTuple, PickleError, PickleEnv, PyDict, PyGlobal, PyStateful } from './pickle';

/** torch.<Name>Storage as a pickle names it: only its element type matters. */
export class StorageType implements PyGlobal {
  constructor(readonly qualname: string, readonly dtype: TorchDtype) {}
  /** Only ever an argument of a persistent id; calling it would make an empty storage, which no checkpoint does. */
  call(): never { throw new PickleError(`the pickle calls ${this.qualname}`); }
  describe(): string { return this.qualname; }
}

/**
 * A storage the pickle refers to, not yet read: the key of its record (zip: data/<key>; legacy: its
 * place in the key list), its element type, and the elements this reference spans. Legacy files may
 * refer to a view (a slice of a root storage): `offset` is where it starts in the root, in elements.
 */
export class StorageRef {
  constructor(readonly key: string, readonly dtype: TorchDtype, readonly numel: number, readonly offset = 0) {}
  describe(): string { return `storage ${this.key} (${this.dtype} x ${this.numel})`; }
}

/** A tensor view of a storage, as _rebuild_tensor_v2 describes it (all in elements). */
export class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
  describe(): string { return `tensor [${this.size}] ${this.storage.dtype}`; }
}

/** numpy.dtype: the type code and, once BUILD gave it, the byte order. */
class NumpyDtype implements PyStateful {
  order = '<';
  constructor(readonly code: string) {}
  setState(state: unknown): void {
    if (isTuple(state) && typeof state[1] === 'string') this.order = state[1];
  }
  describe(): string { return `numpy.dtype ${this.code}`; }
}

function int(v: unknown, what: string): number {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new PickleError(`${what} is not an integer (${describe(v)})`);
  return v;
}

function ints(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new PickleError(`${what} is not a tuple (${describe(v)})`);
  if (v.length > 64) throw new PickleError(`${what} has ${v.length} dimensions`);
  return v.map((x, i) => {
    const n = int(x, `${what}[${i}]`);
    if (n < 0) throw new PickleError(`${what}[${i}] is negative (${n})`);
    return n;
  });
}

function rebuildTensor(args: readonly unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new PickleError(`a tensor is built on a ${describe(storage)}, not a storage`);
  const shape = ints(size, 'a tensor size');
  const strides = ints(stride, 'a tensor stride');
  if (shape.length !== strides.length) throw new PickleError(`a tensor has size [${shape}] but stride [${strides}]`);
  return new TensorRef(storage, int(offset, 'a storage offset'), shape, strides);
}

function tensorArg(v: unknown): TensorRef {
  if (!(v instanceof TensorRef)) throw new PickleError(`a parameter wraps a ${describe(v)}, not a tensor`);
  return v;
}

/** numpy.core.multiarray.scalar(dtype, bytes): the number (or bool) the bytes hold. */
function numpyScalar(args: readonly unknown[]): number | boolean {
  const [dtype, raw] = args;
  if (!(dtype instanceof NumpyDtype) || !(raw instanceof Uint8Array)) throw new PickleError('numpy scalar without a dtype and its bytes');
  const m = /^([fiub])(\d)$/.exec(dtype.code);
  const size = m ? Number(m[2]) : 0;
  if (!m || raw.length !== size) throw new PickleError(`numpy scalar of dtype "${dtype.code}" (only numbers and bools are read)`);
  const le = dtype.order !== '>';
  const v = new DataView(raw.buffer, raw.byteOffset, raw.length);
  const get: Record<string, (() => number | bigint) | undefined> = {
    f2: () => halfValue(v.getUint16(0, le)), f4: () => v.getFloat32(0, le), f8: () => v.getFloat64(0, le),
    i1: () => v.getInt8(0), i2: () => v.getInt16(0, le), i4: () => v.getInt32(0, le), i8: () => v.getBigInt64(0, le),
    u1: () => v.getUint8(0), u2: () => v.getUint16(0, le), u4: () => v.getUint32(0, le), u8: () => v.getBigUint64(0, le),
    b1: () => v.getUint8(0),
  };
  const read = get[dtype.code];
  if (!read) throw new PickleError(`numpy scalar of dtype "${dtype.code}"`);
  const x = Number(read());
  return m[1] === 'b' ? x !== 0 : x;
}

/** Protocol 2 has no bytes type: Python 3 pickles bytes as _codecs.encode(text, 'latin1'). */
function codecsEncode(args: readonly unknown[]): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
    throw new PickleError(`_codecs.encode is only read for latin1 text (got ${describe(text)}, ${describe(encoding)})`);
  }
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new PickleError('_codecs.encode: text outside latin1');
    out[i] = c;
  }
  return out;
}

function orderedDict(args: readonly unknown[]): PyDict {
  const d = new PyDict();
  const [items] = args;
  if (items === undefined) return d;
  if (items instanceof PyDict) return new PyDict(items);
  if (!Array.isArray(items)) throw new PickleError(`OrderedDict of a ${describe(items)}`);
  for (const pair of items) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new PickleError(`OrderedDict item ${describe(pair)} is not a pair`);
    d.set(pair[0], pair[1]);
  }
  return d;
}

const fn = (qualname: string, call: (args: readonly unknown[]) => unknown): [string, PyGlobal] => [qualname, { qualname, call }];

const ALLOWED = new Map<string, PyGlobal>([
  fn('collections.OrderedDict', orderedDict),
  fn('torch._utils._rebuild_tensor_v2', rebuildTensor),
  fn('torch._utils._rebuild_tensor', rebuildTensor),
  fn('torch._utils._rebuild_parameter', (a) => tensorArg(a[0])),
  fn('torch._utils._rebuild_parameter_with_state', (a) => tensorArg(a[0])),
  fn('torch.Size', (a) => (Array.isArray(a[0]) ? Object.freeze([...(a[0] as unknown[])]) : Object.freeze([]))),
  fn('numpy.core.multiarray.scalar', numpyScalar),
  fn('numpy._core.multiarray.scalar', numpyScalar),
  fn('numpy.dtype', (a) => {
    if (typeof a[0] !== 'string') throw new PickleError(`numpy.dtype of a ${describe(a[0])}`);
    return new NumpyDtype(a[0]);
  }),
  fn('_codecs.encode', codecsEncode),
  ...Object.entries(STORAGE_DTYPES).map(([name, dtype]): [string, StorageType] => [`torch.${name}`, new StorageType(`torch.${name}`, dtype)]),
]);

export function resolveGlobal(module: string, name: string): PyGlobal {
  const qualname = `${module}.${name}`;
  const g = ALLOWED.get(qualname);
  if (!g) {
    // torch.save(model) pickles the module classes themselves; their state dict is what can be read.
    const hint = /^(torch\.nn\.|torchvision\.|__main__$|__torch__)/.test(module) ? ': a whole pickled model? save model.state_dict() instead' : '';
    throw new PickleError(`pickle refers to global "${qualname}", which is not allowed in a weights file (only tensors and containers are read)${hint}`);
  }
  return g;
}

const text = (v: unknown): unknown => (v instanceof Uint8Array ? new TextDecoder('latin1').decode(v) : v);

/**
 * The storages one pickle refers to. Persistent ids are ('storage', type, key, location, numel) and,
 * in the legacy format, a sixth item (view key, offset, numel) when the tensor sits on a storage view.
 */
export class StorageTable implements PickleEnv {
  readonly roots = new Map<string, StorageRef>();
  private readonly views = new Map<string, StorageRef>();

  resolveGlobal(module: string, name: string): PyGlobal {
    return resolveGlobal(module, name);
  }

  persistentLoad(pid: unknown): StorageRef {
    if (!Array.isArray(pid) || text(pid[0]) !== 'storage' || pid.length < 5) throw new PickleError(`unknown persistent id (${describe(pid)})`);
    const [, type, rawKey, , numel, view] = pid as unknown[];
    if (!(type instanceof StorageType)) throw new PickleError(`a storage of type ${describe(type)}`);
    const key = String(text(rawKey));
    const n = int(numel, `the size of storage ${key}`);
    let root = this.roots.get(key);
    if (!root) {
      root = new StorageRef(key, type.dtype, n);
      this.roots.set(key, root);
    } else if (root.dtype !== type.dtype) {
      throw new PickleError(`storage ${key} is read both as ${root.dtype} and as ${type.dtype}`);
    }
    if (view === undefined || view === null) return root;
    if (!Array.isArray(view) || view.length !== 3) throw new PickleError(`storage ${key} has a view of ${describe(view)}`);
    const viewKey = String(text(view[0]));
    let ref = this.views.get(viewKey);
    if (!ref) {
      ref = new StorageRef(key, root.dtype, int(view[2], 'a view size'), int(view[1], 'a view offset'));
      if (ref.offset + ref.numel > root.numel) throw new PickleError(`storage view ${viewKey} runs past storage ${key}`);
      this.views.set(viewKey, ref);
    }
    return ref;
  }

  /** Bytes the storage `key` must hold for what the pickle declared. */
  declaredBytes(key: string): number {
    const r = this.roots.get(key);
    return r ? r.numel * ITEM_SIZE[r.dtype] : 0;
  }
}
