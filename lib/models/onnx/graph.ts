/**
 * A small ONNX graph builder the model classes write their inference arithmetic into (each
 * module's `export` beside its `apply`). It holds plain ONNX message objects; export.ts encodes
 * them with onnx-proto. Only types come from onnx-proto here, so the compute workers that load
 * the model classes never load protobufjs.
 *
 * Tensors inside the graph are NCHW (ONNX Runtime's fast layout); the builder's helpers take
 * spatial arguments in the [[top, bottom], [left, right]] form our layers use.
 */
import type { onnx } from 'onnx-proto';
import type { Padding4 } from '../../engine/conv';

/** onnx.TensorProto.DataType values (numeric, so no runtime import is needed). */
const FLOAT = 1;
const INT64 = 7;
/** onnx.AttributeProto.AttributeType values. */
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

/** Attribute values: an integer (INT), integers (INTS) or a string (STRING): all our operators need. */
export type AttrValue = number | number[] | string;

export class OnnxGraph {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private readonly names = new Set<string>();

  /** A tensor or node name not used yet: `base`, else `base_1`, `base_2`... */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.add(name);
    return name;
  }

  /** Reserves a name given from outside (the graph's input): later fresh names avoid it. */
  reserve(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph: the name "${name}" is taken`);
    this.names.add(name);
    return name;
  }

  /** A float32 constant; returns its name. */
  floats(base: string, dims: number[], values: Float32Array): string {
    if (values.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`ONNX initializer ${base}: ${values.length} values for dims [${dims}]`);
    const name = this.fresh(base);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: littleEndian(bytes, 4) });
    return name;
  }

  /** An int64 constant (shapes, pads, axes); a 1-D tensor unless dims say otherwise. */
  int64s(base: string, values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh(base);
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dims, dataType: INT64, rawData: littleEndian(new Uint8Array(data.buffer), 8) });
    return name;
  }

  /** A float32 scalar (rank 0), e.g. Clip's bounds. */
  scalar(base: string, value: number): string {
    return this.floats(base, [], new Float32Array([value]));
  }

  /** Appends a node with one output; returns the output's name (fresh, from `name`). */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name: string = op): string {
    const output = this.fresh(name);
    this.nodes.push({ opType: op, name: output, input: inputs, output: [output], attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
    return output;
  }

  // Operators used by more than one module.

  /** Zero padding of the spatial axes of an NCHW tensor (tf.pad of an NHWC one). */
  padSpatial(x: string, pad: Padding4, name = 'pad'): string {
    const [[t, b], [l, r]] = pad;
    if (t + b + l + r === 0) return x;
    return this.node('Pad', [x, this.int64s(`${name}.pads`, [0, 0, t, l, 0, 0, b, r])], { mode: 'constant' }, name);
  }

  relu(x: string, name = 'relu'): string {
    return this.node('Relu', [x], {}, name);
  }

  relu6(x: string, name = 'relu6'): string {
    return this.node('Clip', [x, this.scalar(`${name}.min`, 0), this.scalar(`${name}.max`, 6)], {}, name);
  }

  add(a: string, b: string, name = 'add'): string {
    return this.node('Add', [a, b], {}, name);
  }

  /** Concatenation along channels (NHWC axis 3 is NCHW axis 1). */
  concatChannels(xs: string[], name = 'concat'): string {
    return xs.length === 1 ? xs[0] : this.node('Concat', xs, { axis: 1 }, name);
  }

  /** [H, W] of an NCHW tensor, as int64 (opset 15's Shape with start). */
  spatialShape(x: string, name = 'hw'): string {
    return this.node('Shape', [x], { start: 2 }, name);
  }
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  if (typeof v === 'string') return { name, type: ATTR_STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    if (!v.every(Number.isInteger)) throw new Error(`ONNX attribute ${name}: integers expected, got [${v}]`);
    return { name, type: ATTR_INTS, ints: v };
  }
  if (!Number.isInteger(v)) throw new Error(`ONNX attribute ${name}: an integer expected, got ${v}`);
  return { name, type: ATTR_INT, i: v };
}

/** ONNX raw data is little-endian; byte-swaps a copy on a big-endian host. */
function littleEndian(bytes: Uint8Array, size: number): Uint8Array {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j];
  return out;
}
