/**
 * Element types of torch storages and their conversion to float32, plus the strided gather that
 * turns a (storage, offset, size, stride) view into a contiguous row-major array. Storages are read
 * as little-endian bytes (the reader refuses big-endian files before anything gets here).
 */
import * as os from 'os';

export type TorchDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const ITEM_SIZE: Record<TorchDtype, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** The storage classes a checkpoint names (torch.<Name>Storage) and the element type each holds. */
export const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  // Saved when someone pickles an untyped storage directly: bytes.
  UntypedStorage: 'uint8',
};

// Typed-array views over the file's bytes read the host's byte order; every Node platform in use is
// little-endian, and a big-endian host would silently scramble every weight, so it is refused.
const HOST_LE = os.endianness() === 'LE';

/** The value of an IEEE half-precision bit pattern (exact in float32: every half is representable). */
export function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero (signed) and subnormals
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;
/** All 65536 half values, so converting a storage is one lookup per element. */
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) halfTable[h] = halfValue(h);
  return halfTable;
}

/**
 * A typed view of `count` elements of `bytes` starting at element `start`, in the storage's element
 * type. Copies only when the bytes are not aligned for the element type (a Buffer slice can start anywhere).
 */
function elements(bytes: Uint8Array, dtype: TorchDtype, start: number, count: number): ArrayLike<number> {
  if (!HOST_LE) throw new Error('this host is big-endian; reading little-endian torch storages here is not supported');
  const size = ITEM_SIZE[dtype];
  let buf = bytes.buffer;
  let off = bytes.byteOffset + start * size;
  if (off % size !== 0) {
    // A fresh array, not bytes.slice: on a Buffer, slice is a view of the same memory.
    const copy = new Uint8Array(count * size);
    copy.set(bytes.subarray(start * size, (start + count) * size));
    buf = copy.buffer;
    off = 0;
  }
  switch (dtype) {
    case 'float32': return new Float32Array(buf, off, count);
    case 'float64': return new Float64Array(buf, off, count);
    case 'int32': return new Int32Array(buf, off, count);
    case 'int16': return new Int16Array(buf, off, count);
    case 'int8': return new Int8Array(buf, off, count);
    case 'uint8':
    case 'bool': return new Uint8Array(buf, off, count);
    case 'float16': {
      const h = new Uint16Array(buf, off, count);
      const table = halfToFloat();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[h[i]];
      return out;
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32: shifting its bits up is the exact conversion.
      const h = new Uint16Array(buf, off, count);
      const out = new Float32Array(count);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = h[i] << 16;
      return out;
    }
    case 'int64': {
      // Two 32-bit halves instead of BigInt: exact up to 2^53, and the nearest double beyond.
      const w = new Int32Array(buf, off, count * 2);
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = w[2 * i + 1] * 4294967296 + (w[2 * i] >>> 0);
      return out;
    }
  }
}

/** Elements a tensor of this shape holds. */
export function numelOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * The tensor view (offset, size, stride in elements) of a storage of `storageNumel` elements as a
 * contiguous row-major float32 array. The caller has checked that the view lies inside the storage.
 */
export function gather(bytes: Uint8Array, dtype: TorchDtype, offset: number, size: number[], stride: number[]): Float32Array {
  const n = numelOf(size);
  const out = new Float32Array(n);
  if (n === 0) return out;
  // Row-major contiguous (dimensions of size 1 may carry any stride): one conversion of a range.
  let expect = 1;
  let contiguous = true;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expect) contiguous = false;
    expect *= size[d];
  }
  if (contiguous) {
    out.set(elements(bytes, dtype, offset, n));
    return out;
  }
  let last = 0;
  for (let d = 0; d < size.length; d++) last += (size[d] - 1) * stride[d];
  const src = elements(bytes, dtype, offset, last + 1);
  // Odometer over the multi-index; the innermost dimension runs as a plain loop.
  const rank = size.length;
  const idx = new Array<number>(rank).fill(0);
  const inner = size[rank - 1];
  const innerStride = stride[rank - 1];
  let base = 0;
  for (let o = 0; o < n; o += inner) {
    for (let i = 0; i < inner; i++) out[o + i] = src[base + i * innerStride];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      base += stride[d];
      if (idx[d] < size[d]) break;
      base -= stride[d] * size[d];
      idx[d] = 0;
    }
  }
  return out;
}
