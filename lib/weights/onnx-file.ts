/**
 * ONNX models as a weights source: a DeepLab exported to ONNX by this package (lib/models/onnx,
 * which describes itself in the model's metadata) or by someone else (torchvision's deeplabv3
 * through torch.onnx.export, a TF export...). They run on ONNX Runtime as they are, up to their
 * logits, so the forward wrapper gets logits at a stride as from our own networks.
 *
 * A foreign file's output is taken back to the logits where the graph ends in what our pipeline
 * does itself: an ArgMax (labels), a Softmax (probabilities) or a Resize to the input size
 * (torchvision's `out`). The graph's output is moved to that tensor and the nodes past it are
 * dropped; a trimmed Resize also tells the align-corners mode of the logits. What is left must be
 * a rank-4 float tensor [n, C, h, w] (or [n, h, w, C] for an NHWC model); anything else (labels
 * from an op we cannot walk back through, several images per output) is refused by name.
 *
 * Decoding and re-encoding use onnx-proto (protobufjs over onnx.proto).
 */
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';

export type TensorLayout = 'nchw' | 'nhwc';
export type OnnxInputType = 'float32' | 'uint8' | 'int32' | 'int64';
export type OnnxOutputKind = 'logits' | 'probs';

/** Metadata keys of this package's exports (lib/models/onnx/export writes them). */
export const META_SPEC = 'deeplab.spec';
export const META_LOGIT_STRIDE = 'deeplab.logitStride';
export const META_ALIGN_CORNERS = 'deeplab.alignCorners';
export const META_PREPROCESSING = 'deeplab.preprocessing';
export const META_CLASS_NAMES = 'deeplab.classNames';

export interface OnnxDeclared {
  /** The tensor to read (a graph output or any value inside it); default: the first output, walked back to the logits. */
  output?: string;
  /** The input's layout; default: detected from its shape (the dimension of size 3). */
  layout?: TensorLayout | 'auto';
  /** What the named output holds; default logits. Probabilities are turned into log-probabilities (logits of the same softmax). */
  outputKind?: OnnxOutputKind;
}

/** How to feed and read a prepared model. */
export interface OnnxIo {
  input: string;
  inputType: OnnxInputType;
  layout: TensorLayout;
  /** Fixed dimensions of the input (null where symbolic). */
  batch: number | null;
  height: number | null;
  width: number | null;
  output: string;
  outputKind: OnnxOutputKind;
  /** From a trimmed Resize or our metadata; undefined when the file does not tell. */
  alignCorners?: boolean;
  /** Ops cut from the end of a foreign graph, last first (e.g. ['ArgMax', 'Resize']). */
  trimmed: string[];
  /** The model's metadata_props. */
  metadata: Record<string, string>;
  /** Set for this package's own exports (they carry deeplab.spec). */
  ours: boolean;
  /** Values in the model's initialisers (its parameters, batch norm folded or not). */
  params: number;
}

export interface PreparedOnnx {
  /** The model to give ONNX Runtime: the file itself, or its re-encoding after a trim. */
  bytes: Uint8Array;
  io: OnnxIo;
}

const ELEM_TYPES: Record<number, OnnxInputType | undefined> = { 1: 'float32', 2: 'uint8', 6: 'int32', 7: 'int64' };
const ELEM_NAMES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16', 11: 'float64', 16: 'bfloat16' };

function dimOf(d: onnx.TensorShapeProto.IDimension): number | null {
  if (d.dimValue === undefined || d.dimValue === null) return null;
  const v = Number(d.dimValue.toString());
  return v > 0 ? v : null;
}

function attr(node: onnx.INodeProto, name: string): onnx.IAttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

function attrString(node: onnx.INodeProto, name: string): string | undefined {
  const s = attr(node, name)?.s;
  return s && s.length ? Buffer.from(s).toString('utf8') : undefined;
}

/** Ops walked back through from the graph's output to the logits, and what each one means. */
const WALK: Record<string, 'labels' | 'probs' | 'resize' | 'same' | undefined> = {
  ArgMax: 'labels', Softmax: 'probs', LogSoftmax: 'probs', Resize: 'resize', Upsample: 'resize', Identity: 'same',
};

/**
 * Reads the model, finds its input and logits, and trims a foreign graph back to its logits.
 * `where` names the file in errors.
 */
export function prepareOnnx(bytes: Uint8Array, where: string, declared: OnnxDeclared = {}): PreparedOnnx {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new Error(`${where} is not an ONNX model (${(err as Error).message})`);
  }
  const graph = model.graph;
  if (!graph || !graph.node?.length) throw new Error(`${where} is not an ONNX model: it holds no graph`);
  const metadata: Record<string, string> = {};
  for (const p of model.metadataProps ?? []) if (p.key) metadata[p.key] = p.value ?? '';
  const external = graph.initializer?.find((t) => (t.externalData?.length ?? 0) > 0);
  if (external) throw new Error(`${where} keeps its weights in external data files (${external.name}): save the model as one file (weights inside, below 2 GB)`);

  // Initialisers may be listed as inputs (older exporters): the image is the input that is not one.
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name ?? ''));
  if (inputs.length !== 1) throw new Error(`${where} has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): a segmentation model takes one image tensor`);
  const inp = inputs[0];
  const tt = inp.type?.tensorType;
  const dims = (tt?.shape?.dim ?? []).map(dimOf);
  if (dims.length !== 4) throw new Error(`${where}: its input "${inp.name}" has rank ${dims.length}, not an image batch [n, 3, h, w] or [n, h, w, 3]`);
  const inputType = ELEM_TYPES[tt?.elemType ?? 0];
  if (!inputType) throw new Error(`${where}: its input "${inp.name}" is ${ELEM_NAMES[tt?.elemType ?? 0] ?? `type ${tt?.elemType}`}: float32, uint8, int32 or int64 images are supported`);

  const ours = META_SPEC in metadata;
  const layout = ours ? 'nhwc' : inputLayout(dims, declared.layout ?? 'auto', `${where}: input "${inp.name}" [${dims.map((d) => d ?? '?').join(', ')}]`);
  const io: OnnxIo = {
    input: inp.name!, inputType, layout,
    batch: dims[0], height: layout === 'nchw' ? dims[2] : dims[1], width: layout === 'nchw' ? dims[3] : dims[2],
    output: '', outputKind: declared.outputKind ?? 'logits', trimmed: [], metadata, ours, params: 0,
  };
  if (ours && metadata[META_ALIGN_CORNERS] !== undefined) io.alignCorners = metadata[META_ALIGN_CORNERS] === 'true';

  const outputs = (graph.output ?? []).map((o) => o.name ?? '');
  if (declared.output) {
    const produced = new Set(graph.node.flatMap((n) => n.output ?? []));
    if (!produced.has(declared.output) && !outputs.includes(declared.output)) {
      throw new Error(`${where} has no tensor "${declared.output}" (the output named in the config); its outputs: ${outputs.join(', ')}`);
    }
    io.output = declared.output;
  } else if (ours) {
    io.output = outputs[0];
  } else {
    if (!outputs.length) throw new Error(`${where} has no outputs`);
    walkToLogits(graph, outputs[0], io);
  }
  const trim = !(io.output === outputs[0] && outputs.length === 1);
  if (trim) setOutput(graph, io.output);
  for (const t of graph.initializer ?? []) io.params += (t.dims ?? []).reduce<number>((n, d) => n * Number(d.toString()), 1);
  return { bytes: trim ? onnx.ModelProto.encode(model).finish() : bytes, io };
}

function inputLayout(dims: (number | null)[], declared: TensorLayout | 'auto', what: string): TensorLayout {
  const chw = dims[1] === 3;
  const hwc = dims[3] === 3;
  if (declared !== 'auto') {
    // Wrong when the declared channel axis is fixed to another size, or it is free while the other one holds the 3.
    const [own, other] = declared === 'nchw' ? [dims[1], dims[3]] : [dims[3], dims[1]];
    if ((own !== null && own !== 3) || (own === null && other === 3)) {
      throw new Error(`${what} does not have 3 channels where layout ${declared.toUpperCase()} puts them`);
    }
    return declared;
  }
  if (chw && !hwc) return 'nchw';
  if (hwc && !chw) return 'nhwc';
  throw new Error(`${what}: cannot tell where its 3 colour channels are; set the input layout (NCHW for PyTorch exports, NHWC for TensorFlow's)`);
}

/** Walks from a graph output back through ArgMax / Softmax / Resize / Identity to the logits. */
function walkToLogits(graph: onnx.IGraphProto, output: string, io: OnnxIo): void {
  const producer = new Map<string, onnx.INodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  let name = output;
  for (let step = 0; step < 8; step++) {
    const n = producer.get(name);
    const kind = n?.opType ? WALK[n.opType] : undefined;
    if (!n || !kind || !n.input?.[0]) break;
    // Past a Softmax the tensor is the logits, whatever was declared of the output.
    if (kind === 'probs') io.outputKind = 'logits';
    if (kind === 'resize') {
      const mode = attrString(n, 'coordinate_transformation_mode') ?? (n.opType === 'Upsample' ? 'asymmetric' : 'half_pixel');
      if (io.alignCorners === undefined) io.alignCorners = mode === 'align_corners';
    }
    io.trimmed.push(n.opType!);
    name = n.input[0];
  }
  io.output = name;
}

/** Makes `name` the graph's one output and drops the nodes that do not lead to it. */
function setOutput(graph: onnx.IGraphProto, name: string): void {
  const nodes = graph.node ?? [];
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => producer.set(o, i)));
  const keep = new Set<number>();
  const stack = [name];
  while (stack.length) {
    const i = producer.get(stack.pop()!);
    if (i === undefined || keep.has(i)) continue;
    keep.add(i);
    for (const x of nodes[i].input ?? []) if (x) stack.push(x);
  }
  graph.node = nodes.filter((_, i) => keep.has(i));
  const known = [...(graph.valueInfo ?? []), ...(graph.output ?? [])].find((v) => v.name === name);
  graph.output = [known ?? onnx.ValueInfoProto.create({ name })];
  const used = new Set(graph.node.flatMap((n) => n.input ?? []));
  graph.initializer = (graph.initializer ?? []).filter((t) => used.has(t.name ?? ''));
}

/** The model's bytes from a file path or an http(s) URL. */
export async function readOnnxBytes(location: string, timeoutMs = 600_000): Promise<{ bytes: Uint8Array; where: string }> {
  if (/^https?:\/\//i.test(location)) {
    const res = await fetch(location, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`GET ${location}: HTTP ${res.status} ${res.statusText}`);
    return { bytes: new Uint8Array(await res.arrayBuffer()), where: location };
  }
  const file = path.resolve(location);
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: an ONNX model is one .onnx file`);
  if (fs.statSync(file).isDirectory()) throw new Error(`${file} is a folder: name the .onnx file itself`);
  const b = fs.readFileSync(file);
  return { bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), where: file };
}
