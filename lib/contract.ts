/**
 * The message contract: the plain-data shapes that travel on Node-RED wires between nodes.
 * Never a tf.Tensor on a wire: Node-RED deep-clones messages on fan-out.
 */

/** RGB image, row-major HWC, 3 channels. */
export interface RawImage {
  width: number;
  height: number;
  channels: 3;
  data: Uint8Array;
}

/** Per-pixel class scores, row-major HWC (index (y * width + x) * classes + c). */
export interface ScoreMap {
  width: number;
  height: number;
  classes: number;
  data: Float32Array;
  kind: 'logits' | 'probs';
  /** Pixels of the network input per score-map cell (1 once upsampled to the image). */
  stride: number;
  /** Present on maps from deeplab-infer's multi-scale / flip outputs. */
  scale?: number;
  flipped?: boolean;
}

/** Per-pixel class ids; ignoreIndex marks void pixels. */
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

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Buffer.isBuffer(value)) return `a Buffer of ${value.length} bytes`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as Uint8Array).length}`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'object') return `an object with keys [${Object.keys(value as object).slice(0, 8).join(', ')}]`;
  return `${typeof value} ${JSON.stringify(value)}`.slice(0, 80);
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

export function isRawImage(v: unknown): v is RawImage {
  const o = v as RawImage;
  return !!o && typeof o === 'object' && !Buffer.isBuffer(o) && isPositiveInt(o.width) && isPositiveInt(o.height) &&
    o.channels === 3 && o.data instanceof Uint8Array && o.data.length === o.width * o.height * 3;
}

export function isScoreMap(v: unknown): v is ScoreMap {
  const o = v as ScoreMap;
  return !!o && typeof o === 'object' && isPositiveInt(o.width) && isPositiveInt(o.height) && isPositiveInt(o.classes) &&
    o.data instanceof Float32Array && o.data.length === o.width * o.height * o.classes;
}

export function isLabelMap(v: unknown): v is LabelMap {
  const o = v as LabelMap;
  return !!o && typeof o === 'object' && isPositiveInt(o.width) && isPositiveInt(o.height) &&
    o.data instanceof Uint8Array && o.data.length === o.width * o.height && !('classes' in o);
}

/** Throws a ContractError naming what was expected and what came. */
export function expectScoreMap(v: unknown, what = 'msg.payload'): ScoreMap {
  if (isScoreMap(v)) return v;
  throw new ContractError(`${what}: expected a ScoreMap {width, height, classes, data: Float32Array(width*height*classes), kind, stride}, got ${describe(v)}`);
}

export function expectLabelMap(v: unknown, what = 'msg.payload'): LabelMap {
  if (isLabelMap(v)) return v;
  throw new ContractError(`${what}: expected a LabelMap {width, height, data: Uint8Array(width*height), ignoreIndex}, got ${describe(v)}`);
}

export function expectRawImage(v: unknown, what = 'msg.image'): RawImage {
  if (isRawImage(v)) return v;
  throw new ContractError(`${what}: expected a RawImage {width, height, channels: 3, data: Uint8Array(width*height*3)}, got ${describe(v)}`);
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
