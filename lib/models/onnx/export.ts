/**
 * A DeepLab network as an ONNX model (opset 17, IR version 8), written from our own module tree:
 * every module's `export` mirrors its `apply` at inference (BN on running statistics, folded
 * into the conv before it; no dropout; no auxiliary head).
 *
 * The interface is DeepLab.forward's: one input `input`, float32 NHWC [N, H, W, 3], already
 * normalised, any N, H, W; one output `logits`, float32 NHWC [N, h, w, classes] at the model's
 * logit stride. Inside, the graph runs NCHW (ONNX Runtime's fast layout): a Transpose at each end.
 * The metadata carries what a runner needs to use the file alone (the ONNX_META keys).
 */
import { onnx } from 'onnx-proto';
import { DeepLab } from '../deeplab';
import { Preprocessing } from '../preprocess';
import { OnnxGraph } from './graph';

export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'logits';
export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

/** metadata_props keys; every value is a string (JSON where it is structured). */
export const ONNX_META = {
  /** JSON of the ModelSpec. */
  spec: 'deeplab.spec',
  /** The logits' stride in input pixels, e.g. "8" (v3+: "4"). */
  logitStride: 'deeplab.logitStride',
  /** "true" | "false": the align-corners rule for resizing the input and the logits. */
  alignCorners: 'deeplab.alignCorners',
  /** The preprocessing the weights expect (caffe-bgr, imagenet, tanh), when given. */
  preprocessing: 'deeplab.preprocessing',
  /** JSON array of the class names, when given. */
  classNames: 'deeplab.classNames',
  /** JSON of a saved model's free-form provenance (its manifest's meta), when given. */
  meta: 'deeplab.meta',
} as const;

export interface OnnxExportOptions {
  preprocessing?: Preprocessing;
  classNames?: string[];
  /** A saved model's provenance (training iteration, mIoU, source file), kept as JSON. */
  meta?: Record<string, unknown>;
  /** Further metadata_props (a saved model's provenance, say); the keys above are ours. */
  metadata?: Record<string, string>;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;

function valueInfo(name: string, dims: (number | string)[]): onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim } } } };
}

/** The graph of `model.forward(x).logits` at inference (see the file comment). */
export function buildOnnxGraph(model: DeepLab): OnnxGraph {
  const g = new OnnxGraph();
  const input = g.reserve(ONNX_INPUT);
  const nchw = g.node('Transpose', [input], { perm: [0, 3, 1, 2] }, 'input.nchw');
  const logits = model.export(g, nchw);
  const out = g.node('Transpose', [logits], { perm: [0, 2, 3, 1] }, ONNX_OUTPUT);
  if (out !== ONNX_OUTPUT) throw new Error(`ONNX export: the output name "${ONNX_OUTPUT}" was taken inside the graph`);
  return g;
}

export function onnxMetadata(model: DeepLab, opts: OnnxExportOptions = {}): Record<string, string> {
  if (opts.classNames && opts.classNames.length !== model.spec.classes) {
    throw new Error(`ONNX export: ${opts.classNames.length} class names for ${model.spec.classes} classes`);
  }
  const ours: Record<string, string> = {
    [ONNX_META.spec]: JSON.stringify(model.spec),
    [ONNX_META.logitStride]: String(model.logitStride),
    [ONNX_META.alignCorners]: String(model.alignCorners),
  };
  if (opts.preprocessing) ours[ONNX_META.preprocessing] = opts.preprocessing;
  if (opts.classNames) ours[ONNX_META.classNames] = JSON.stringify(opts.classNames);
  if (opts.meta) ours[ONNX_META.meta] = JSON.stringify(opts.meta);
  for (const key of Object.keys(opts.metadata ?? {})) {
    if (key in ours || Object.values(ONNX_META).includes(key as never)) throw new Error(`ONNX export: metadata key "${key}" is reserved (give it through its own option)`);
  }
  return { ...opts.metadata, ...ours };
}

/** The network and its weights as the bytes of an .onnx file. */
export function exportOnnx(model: DeepLab, opts: OnnxExportOptions = {}): Uint8Array {
  const metadata = onnxMetadata(model, opts);
  const g = buildOnnxGraph(model);
  const s = model.spec;
  const proto: onnx.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'node-red-deeplab',
    docString: `DeepLab ${s.variant} ${s.backbone}, ${s.classes} classes, output stride ${s.outputStride}, width ${s.width}`,
    graph: {
      name: `deeplab_${s.variant}_${s.backbone}`,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(ONNX_INPUT, ['N', 'H', 'W', 3])],
      output: [valueInfo(ONNX_OUTPUT, ['N', 'logits_height', 'logits_width', s.classes])],
    },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
  return onnx.ModelProto.encode(proto).finish();
}
