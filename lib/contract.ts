/**
 * The message contract: the plain-data shapes that travel on Node-RED wires between nodes, and
 * the one place that reads them from a message and writes them onto one.
 *
 * Bulk data travels as Buffers. Node-RED deep-clones a message for every extra wire
 * (RED.util.cloneMessage, lodash's cloneDeep): a Buffer is passed on as a view of the same memory
 * in constant time, while a typed array is copied and then walked index by index (seconds for a
 * 513x513x21 Float32Array, a RangeError beyond 2^27 elements; figures in bench/clone.ts). So:
 * - RawImage and LabelMap `data` is a Buffer on wires (a Uint8Array subclass: readers index it as before);
 * - ScoreMap `data` is a Buffer of float32 values (little-endian, 4 bytes per score) on wires;
 *   code that computes on it takes a Float32Array view with scoreValues() (no copy).
 * Shared memory means every node treats the data it receives as read-only.
 *
 * Inputs are accepted more widely: typed arrays of any realm (a Function node's sandbox is
 * another vm context, where `instanceof Uint8Array` fails; the checks here use ArrayBuffer.isView
 * and the built-in type tags), plain ArrayBuffers, and Float32Arrays for score maps.
 *
 * Never a tf.Tensor on a wire.
 */
import * as os from 'os';

/** RGB image, row-major HWC, 3 channels. `data` is a Buffer on wires. */
export interface RawImage {
  width: number;
  height: number;
  channels: 3;
  data: Uint8Array;
}

/** Per-pixel class scores, row-major HWC (index (y * width + x) * classes + c), as code computes on them. */
export interface ScoreMap {
  width: number;
  height: number;
  classes: number;
  data: Float32Array;
  kind: 'logits' | 'probs';
  /** Pixels of the network input (or of the image, once upsampled) per score-map cell: 1 at the image's own size. */
  stride: number;
  /** Present on maps from deeplab-infer's multi-scale / flip outputs. */
  scale?: number;
  flipped?: boolean;
}

/** A ScoreMap as it travels on wires: its scores as float32 little-endian bytes. */
export type WireScoreMap = Omit<ScoreMap, 'data'> & { data: Buffer };

/** Per-pixel class ids; ignoreIndex marks void pixels. `data` is a Buffer on wires. */
export interface LabelMap {
  width: number;
  height: number;
  data: Uint8Array;
  ignoreIndex: number;
}

/** An error whose message is meant for the Node-RED user (what was expected, what came). */
export class ContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContractError';
  }
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** The built-in type tag ('Uint8Array', 'ArrayBuffer'...): the same in every realm, unlike instanceof. */
function tagOf(v: unknown): string {
  return Object.prototype.toString.call(v).slice(8, -1);
}

function isArrayBufferObject(v: unknown): v is ArrayBuffer {
  const t = tagOf(v);
  return t === 'ArrayBuffer' || t === 'SharedArrayBuffer';
}

/** A Float32Array of any realm. */
function isFloat32(v: unknown): v is Float32Array {
  return ArrayBuffer.isView(v) && tagOf(v) === 'Float32Array';
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  if (ArrayBuffer.isView(value)) {
    const t = tagOf(value);
    return t === 'DataView' ? `a DataView of ${value.byteLength} bytes` : `a ${t} of length ${(value as Uint8Array).length}`;
  }
  if (isArrayBufferObject(value)) return `an ArrayBuffer of ${value.byteLength} bytes`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return `an object with keys [${Object.keys(value as object).slice(0, 8).join(', ')}]`;
  return `${typeof value} ${JSON.stringify(value)}`.slice(0, 80);
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/**
 * Bytes of any realm (Buffer, Uint8Array, Uint8ClampedArray, ArrayBuffer) as a Buffer over the
 * same memory, no copy; undefined for anything else.
 */
export function asBuffer(v: unknown): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (ArrayBuffer.isView(v)) {
    const t = tagOf(v);
    return t === 'Uint8Array' || t === 'Uint8ClampedArray' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : undefined;
  }
  if (isArrayBufferObject(v)) return Buffer.from(v);
  return undefined;
}

/** Float32 values from bytes: a view when aligned (and the machine is little-endian), else a copy. */
function floatsFromBytes(b: Buffer): Float32Array {
  const n = b.length / 4;
  if (LITTLE_ENDIAN && b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, n);
  const out = new Float32Array(n);
  const view = new DataView(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * The scores of a map as a Float32Array of this realm: a view of the map's memory (no copy)
 * whether `data` is a Float32Array of any realm or float32 little-endian bytes (Buffer,
 * Uint8Array, ArrayBuffer); undefined when it is neither or the length does not fit.
 * Read-only by convention: the memory is shared with the message (and every wire's clone).
 */
export function scoreValues(map: { width: number; height: number; classes: number; data: unknown }): Float32Array | undefined {
  const n = map.width * map.height * map.classes;
  const d = map.data;
  if (isFloat32(d)) {
    if (d.length !== n) return undefined;
    // A Float32Array of another realm: a view of this realm over the same memory.
    return d instanceof Float32Array ? d : new Float32Array((d as Float32Array).buffer, (d as Float32Array).byteOffset, n);
  }
  const b = asBuffer(d);
  return b && b.length === n * 4 ? floatsFromBytes(b) : undefined;
}

/** Why a score map's data does not fit, for the error. */
function scoreDataProblem(o: Record<string, unknown>): string {
  const n = (o.width as number) * (o.height as number) * (o.classes as number);
  return `data must hold ${o.width}x${o.height}x${o.classes} = ${n} float32 scores (a Float32Array of that length, or ${n * 4} bytes), got ${describe(o.data)}`;
}

function shapeProblem(o: unknown, keys: string[]): string | undefined {
  if (!o || typeof o !== 'object' || Array.isArray(o) || ArrayBuffer.isView(o)) return describe(o);
  const r = o as Record<string, unknown>;
  const bad = keys.filter((k) => !isPositiveInt(r[k]));
  return bad.length ? `${bad.map((k) => `${k} ${JSON.stringify(r[k])}`).join(', ')} (positive integers expected)` : undefined;
}

const SCORE_MAP_SHAPE = '{width, height, classes, data: float32 scores (Buffer or Float32Array of width*height*classes), kind, stride}';
const RAW_IMAGE_SHAPE = '{width, height, channels: 3, data: Buffer or Uint8Array of width*height*3 RGB bytes}';
const LABEL_MAP_SHAPE = '{width, height, data: Buffer or Uint8Array of width*height class ids, ignoreIndex}';

/**
 * Reads a ScoreMap from a message: checked, with its scores as a Float32Array view (no copy).
 * Throws a ContractError naming what was expected and what came.
 */
export function expectScoreMap(v: unknown, what = 'msg.payload'): ScoreMap {
  const shape = shapeProblem(v, ['width', 'height', 'classes']);
  if (shape) throw new ContractError(`${what}: expected a ScoreMap ${SCORE_MAP_SHAPE}, got ${shape}`);
  const o = v as ScoreMap;
  const data = scoreValues(o);
  if (!data) throw new ContractError(`${what}: ScoreMap ${scoreDataProblem(o as unknown as Record<string, unknown>)}`);
  return data === o.data ? o : { ...o, data };
}

/** Reads a RawImage: checked, `data` as a Buffer over the same memory. */
export function expectRawImage(v: unknown, what = 'msg.image'): RawImage {
  const shape = shapeProblem(v, ['width', 'height']);
  if (shape) throw new ContractError(`${what}: expected a RawImage ${RAW_IMAGE_SHAPE}, got ${shape}`);
  const o = v as RawImage;
  if (o.channels !== 3) throw new ContractError(`${what}: a RawImage has channels: 3 (RGB), got ${JSON.stringify(o.channels)}`);
  const data = asBuffer(o.data);
  const n = o.width * o.height * 3;
  if (!data || data.length !== n) {
    throw new ContractError(`${what}: RawImage data must be ${o.width}x${o.height}x3 = ${n} bytes (a Buffer or Uint8Array), got ${describe(o.data)}`);
  }
  return data === o.data ? o : { ...o, data };
}

/** Reads a LabelMap: checked, `data` as a Buffer over the same memory. */
export function expectLabelMap(v: unknown, what = 'msg.payload'): LabelMap {
  const shape = shapeProblem(v, ['width', 'height']);
  if (shape) throw new ContractError(`${what}: expected a LabelMap ${LABEL_MAP_SHAPE}, got ${shape}`);
  const o = v as LabelMap;
  if ('classes' in o) throw new ContractError(`${what}: expected a LabelMap ${LABEL_MAP_SHAPE}, got an object with classes (a ScoreMap?)`);
  const data = asBuffer(o.data);
  const n = o.width * o.height;
  if (!data || data.length !== n) {
    throw new ContractError(`${what}: LabelMap data must be ${o.width}x${o.height} = ${n} bytes (a Buffer or Uint8Array), got ${describe(o.data)}`);
  }
  const ignoreIndex = o.ignoreIndex ?? 255;
  if (!(Number.isInteger(ignoreIndex) && ignoreIndex >= 0 && ignoreIndex <= 255)) {
    throw new ContractError(`${what}: LabelMap ignoreIndex must be an integer in 0..255, got ${JSON.stringify(o.ignoreIndex)}`);
  }
  return data === o.data && ignoreIndex === o.ignoreIndex ? o : { ...o, data, ignoreIndex };
}

function accepts(read: (v: unknown) => unknown, v: unknown): boolean {
  try {
    read(v);
    return true;
  } catch {
    return false;
  }
}

/** Whether v reads as a RawImage (any accepted form; read it with expectRawImage). */
export function isRawImage(v: unknown): boolean {
  return !Buffer.isBuffer(v) && accepts(expectRawImage, v);
}

/** Whether v reads as a ScoreMap (any accepted form; read it with expectScoreMap). */
export function isScoreMap(v: unknown): boolean {
  return accepts(expectScoreMap, v);
}

/** Whether v reads as a LabelMap (any accepted form; read it with expectLabelMap). */
export function isLabelMap(v: unknown): boolean {
  return accepts(expectLabelMap, v);
}

/** Float32 values as little-endian bytes in a Buffer: the same memory where the machine is little-endian. */
function floatBytes(d: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  const out = Buffer.allocUnsafe(d.length * 4);
  for (let i = 0; i < d.length; i++) out.writeFloatLE(d[i], i * 4);
  return out;
}

/** A ScoreMap as it goes onto a wire: its scores as a Buffer over the same memory (no copy). */
export function toWireScoreMap(map: ScoreMap): WireScoreMap {
  return { ...map, data: floatBytes(map.data) };
}

/** A LabelMap as it goes onto a wire: `data` a Buffer over the same memory. */
export function toWireLabelMap(map: LabelMap): LabelMap {
  return Buffer.isBuffer(map.data) ? map : { ...map, data: asBuffer(map.data)! };
}

/** A RawImage as it goes onto a wire: `data` a Buffer over the same memory. */
export function toWireRawImage(image: RawImage): RawImage {
  return Buffer.isBuffer(image.data) ? image : { ...image, data: asBuffer(image.data)! };
}

/** Throws when any score is NaN or infinite (a broken upstream stage). */
export function expectFinite(map: ScoreMap, what = 'msg.payload'): void {
  const d = map.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      const px = Math.floor(i / map.classes);
      throw new ContractError(`${what}: score map holds ${d[i]} at pixel (${px % map.width}, ${Math.floor(px / map.width)}), class ${i % map.classes}`);
    }
  }
}

export { describe as describeValue };
