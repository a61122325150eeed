/**
 * TF.js graph models as a weights source: model.json (a GraphDef topology and a weights manifest)
 * and its weight shards, from a folder on disk or an http(s) URL. These are networks this package
 * does not build (the DeepLab v3 models of @tensorflow-models/deeplab, or any graph exported the
 * same way), so they run as the graph itself, stopped at its logits node: the forward wrapper then
 * gets logits at a stride, as from our own networks, and pads, crops, upsamples and fuses them alike.
 *
 * Google's exported DeepLab graphs take RGB 0..255 (uint8, int32 in TF.js) and normalise inside; they
 * pad the image bottom/right with the mean pixel up to their crop size (513 x 513 for the TF.js
 * models, whatever the input), and end in ResizeBilinear (corners aligned) + ArgMax. So their logits
 * cover that padded frame, not our input: the stride is read from the target size of the resize that
 * consumes the logits, and forward() keeps only the cells that cover its input. A graph that rescales
 * the image inside is not supported (its cells would not sit on our pixels).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { WeightsSource } from '../models/config';
import { findPublished } from './catalogue';
import { PrepareOptions, preparePublished } from './published';
import { fetchBytes, HttpTimeouts } from './download';

export const GRAPH_MODEL_FILE = 'model.json';
/** The logits node of Google's DeepLab graphs (a BiasAdd, or the _FusedConv2D that took its name). */
export const DEFAULT_LOGITS_NODE = 'logits/semantic/BiasAdd';

export interface GraphLoadOptions {
  /** Name of the node whose output is the logits [1, h, w, classes]; default: detected. */
  logitsNode?: string;
  /** Side of the probe image run at load (finds classes and stride; warms up). */
  probeSize?: number;
  /** Time limits of a URL load (see download.ts: connect 15 s, total from the option or the environment). */
  timeouts?: HttpTimeouts;
}

/** What was found in the graph (the model host reports it). */
export interface GraphInfo {
  location: string;
  input: string;
  logitsNode: string;
  classes: number;
  logitStride: number;
  alignCorners: boolean;
  params: number;
}

interface NodeDef {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, { b?: boolean }>;
}

type ShardReader = (shardPath: string) => Promise<ArrayBuffer>;

function parseModelJson(text: string, where: string): tf.io.ModelJSON {
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(text) as tf.io.ModelJSON;
  } catch (err) {
    throw new Error(`${where} is not JSON: ${(err as Error).message}`);
  }
  const nodes = (json.modelTopology as { node?: unknown } | undefined)?.node;
  if (!Array.isArray(nodes)) {
    const kind = json.format === 'layers-model' ? 'a TF.js layers model' : 'no GraphDef topology (modelTopology.node)';
    throw new Error(`${where} is not a TF.js graph model: ${kind}`);
  }
  return json;
}

/** model.json and a reader of the shards it lists, from a folder, a model.json path or a URL. */
async function openModel(location: string, timeouts: HttpTimeouts): Promise<{ json: tf.io.ModelJSON; where: string; read: ShardReader }> {
  if (/^https?:\/\//i.test(location)) {
    const url = new URL(location);
    if (!url.pathname.endsWith('.json')) url.pathname = `${url.pathname.replace(/\/*$/, '')}/${GRAPH_MODEL_FILE}`;
    const json = parseModelJson((await fetchBytes(url.href, timeouts)).toString('utf8'), url.href);
    return {
      json,
      where: url.href,
      read: async (p) => {
        const u = new URL(p, url);
        if (!u.search) u.search = url.search; // TF Hub wants its ?tfjs-format=file on the shards too
        const b = await fetchBytes(u.href, timeouts);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      },
    };
  }
  let file = path.resolve(location);
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: a TF.js graph model is a folder holding ${GRAPH_MODEL_FILE} and its weight shards`);
  if (fs.statSync(file).isDirectory()) {
    const dir = file;
    file = path.join(dir, GRAPH_MODEL_FILE);
    if (!fs.existsSync(file)) throw new Error(`no ${GRAPH_MODEL_FILE} in ${dir}: a TF.js graph model is a folder holding ${GRAPH_MODEL_FILE} (the graph) and the weight shards it lists`);
  }
  const json = parseModelJson(fs.readFileSync(file, 'utf8'), file);
  const dir = path.dirname(file);
  return {
    json,
    where: file,
    read: async (p) => {
      const shard = path.resolve(dir, p);
      try {
        const b = await fs.promises.readFile(shard);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      } catch (err) {
        throw new Error(`weight shard "${p}" listed in ${file} cannot be read: ${(err as Error).message}`);
      }
    },
  };
}

/** An IOHandler over our reader: tfjs's own file:// handler lives in tfjs-node, which may be absent. */
function ioHandler(json: tf.io.ModelJSON, read: ShardReader): tf.io.IOHandler {
  return {
    load: () => tf.io.getModelArtifactsForJSON(json, async (manifest) => {
      const specs: tf.io.WeightsManifestEntry[] = [];
      const parts: Uint8Array[] = [];
      for (const group of manifest) {
        specs.push(...group.weights);
        for (const p of group.paths) parts.push(new Uint8Array(await read(p)));
      }
      const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        all.set(p, at);
        at += p.length;
      }
      return [specs, all.buffer];
    }),
  };
}

const bare = (name: string): string => name.replace(/^\^/, '').replace(/:\d+$/, '');

/** Ops that pass a tensor on unchanged in shape for our purpose (walking from the labels to the logits). */
const PASS_THROUGH = new Set(['Identity', 'Slice', 'StridedSlice', 'Cast', 'Squeeze', 'ExpandDims', 'Reshape']);

/**
 * The logits node: the named one (checked), else DeepLab's own name, else the input of the
 * ResizeBilinear that feeds the ArgMax producing the labels.
 */
function findLogits(nodes: Map<string, NodeDef>, named?: string): string {
  if (named) {
    if (nodes.has(named)) return named;
    const near = [...nodes.values()].filter((n) => /BiasAdd|FusedConv2D/.test(n.op)).map((n) => n.name).slice(-5);
    throw new Error(`the graph has no node "${named}" (the logits node named in the config)${near.length ? `; its last BiasAdd / fused-conv nodes: ${near.join(', ')}` : ''}`);
  }
  if (nodes.has(DEFAULT_LOGITS_NODE)) return DEFAULT_LOGITS_NODE;
  const through = (name: string): NodeDef | undefined => {
    let n = nodes.get(bare(name));
    while (n && PASS_THROUGH.has(n.op) && n.input?.length) n = nodes.get(bare(n.input[0]));
    return n;
  };
  for (const argmax of [...nodes.values()].filter((n) => n.op === 'ArgMax').reverse()) {
    const resize = argmax.input?.length ? through(argmax.input[0]) : undefined;
    if (resize?.op === 'ResizeBilinear' && resize.input?.length) return bare(resize.input[0]);
  }
  throw new Error(`cannot find the logits in this graph (no node "${DEFAULT_LOGITS_NODE}", no ArgMax fed by a ResizeBilinear): name the logits node in the config`);
}

/** The ResizeBilinear that upsamples the logits (through Identity nodes), if any. */
function resizeOf(nodes: Map<string, NodeDef>, logits: string): NodeDef | undefined {
  let frontier = [logits];
  for (let depth = 0; depth < 4 && frontier.length; depth++) {
    const next: string[] = [];
    for (const n of nodes.values()) {
      if (!n.input?.length || !frontier.includes(bare(n.input[0]))) continue;
      if (n.op === 'ResizeBilinear') return n;
      if (n.op === 'Identity') next.push(n.name);
    }
    frontier = next;
  }
  return undefined;
}

/** A TF.js graph model run up to its logits; it fits lib/inference/predict's SegNet. */
export class GraphSegmenter {
  /**
   * Preprocessing is the graph's own: it takes raw RGB 0..255 and normalises inside, so our side
   * only makes it float for the resize and rounds it back to int32 in forward(). Padding takes the
   * mean pixel, which is what DeepLab's export pads its crop with before its normalisation.
   */
  readonly padValue = 127.5;
  readonly planStride: number;

  constructor(private readonly model: tf.GraphModel, readonly info: GraphInfo, private readonly dtype: tf.DataType, private readonly batchOne: boolean) {
    this.planStride = info.logitStride;
  }

  get logitStride(): number {
    return this.info.logitStride;
  }

  get alignCorners(): boolean {
    return this.info.alignCorners;
  }

  get classes(): number {
    return this.info.classes;
  }

  normalize(rgb: tf.Tensor4D): tf.Tensor4D {
    return tf.cast(rgb, 'float32');
  }

  /** Logits [n, h, w, C] covering the batch's pixels (cell j on pixel j * stride); the caller disposes. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, H, W] = x.shape;
      const feed = this.dtype === 'float32' ? x : tf.cast(tf.round(x), this.dtype);
      // The DeepLab graphs squeeze a batch of one: a batch (the mirrored copy) runs image by image.
      const images = this.batchOne && n > 1 ? tf.split(feed, n, 0) : [feed];
      const outs = images.map((im) => this.model.execute({ [this.info.input]: im }, this.info.logitsNode) as tf.Tensor4D);
      const logits = outs.length === 1 ? outs[0] : tf.concat(outs, 0);
      // Cells past the input cover only the graph's own padding up to its crop size.
      const s = this.logitStride;
      const h = Math.min(logits.shape[1], Math.round((H - 1) / s) + 1);
      const w = Math.min(logits.shape[2], Math.round((W - 1) / s) + 1);
      return h === logits.shape[1] && w === logits.shape[2] ? logits : tf.slice(logits, [0, 0, 0, 0], [n, h, w, logits.shape[3]]);
    });
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * Loads a graph model (folder, model.json path or http(s) URL), finds its input and logits, and runs
 * one probe image to learn the classes and the stride (input pixels per logit cell).
 */
export async function loadGraphSegmenter(location: string, opts: GraphLoadOptions = {}): Promise<GraphSegmenter> {
  const { json, where, read } = await openModel(location, opts.timeouts ?? {});
  const nodes = new Map(((json.modelTopology as { node: NodeDef[] }).node).map((n) => [n.name, n]));
  const logitsNode = findLogits(nodes, opts.logitsNode?.trim() ? bare(opts.logitsNode.trim()) : undefined);
  const model = await tf.loadGraphModel(ioHandler(json, read));
  try {
    const inputs = model.inputs;
    const input = inputs.length === 1 ? inputs[0] : inputs.find((i) => i.name === 'ImageTensor');
    if (!input) throw new Error(`${where}: the graph has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}) and none is ImageTensor`);
    const resize = resizeOf(nodes, logitsNode);
    const sizeNode = resize?.input && resize.input.length > 1 ? bare(resize.input[1]) : undefined;
    const probe = opts.probeSize ?? 65;
    const shape = input.shape ?? [];
    const ph = shape[1] > 0 ? shape[1] : probe;
    const pw = shape[2] > 0 ? shape[2] : probe;
    const found = tf.tidy(() => {
      const x = tf.fill([1, ph, pw, 3], 128, input.dtype === 'float32' ? 'float32' : 'int32');
      let outs: tf.Tensor[];
      try {
        outs = [model.execute({ [input.name]: x }, sizeNode ? [logitsNode, sizeNode] : [logitsNode])].flat();
      } catch (err) {
        throw new Error(`${where}: running the graph to "${logitsNode}" failed: ${(err as Error).message}`);
      }
      const [, h, w, classes] = outs[0].shape;
      if (outs[0].rank !== 4) throw new Error(`${where}: node "${logitsNode}" gives a rank-${outs[0].rank} tensor, not logits [1, h, w, classes]`);
      // The logits cover the frame the resize targets (the graph's padded crop), else our input.
      const [fh, fw] = sizeNode ? Array.from(outs[1].dataSync()) : [ph, pw];
      const strides = [[fh, h], [fw, w]].filter(([, c]) => c > 1).map(([f, c]) => (f - 1) / (c - 1));
      return { classes, stride: strides.length ? Math.max(1, Math.round(Math.max(...strides))) : Math.max(ph, pw) };
    });
    let params = 0;
    for (const list of Object.values(model.weights)) for (const t of list) params += t.size;
    const info: GraphInfo = {
      location: where, input: input.name, logitsNode, classes: found.classes, logitStride: found.stride,
      // TF's default is false; DeepLab's graphs align corners (the attribute then says so).
      alignCorners: resize ? resize.attr?.align_corners?.b === true : true, params,
    };
    return new GraphSegmenter(model, info, input.dtype === 'float32' ? 'float32' : 'int32', shape[0] === 1);
  } catch (err) {
    model.dispose();
    throw err;
  }
}

/** True when a weights source names a TF.js graph model (directly or as a published entry). */
export function isGraphSource(w: WeightsSource): boolean {
  if (w.source === 'tfjs-graph') return true;
  if (w.source !== 'published') return false;
  try {
    return findPublished(w.id).format === 'tfjs-graph';
  } catch {
    return false;
  }
}

/** Where a graph source's model.json is (a published entry downloaded first), or undefined for other sources. */
export async function graphLocation(w: WeightsSource, opts: PrepareOptions = {}): Promise<{ location: string; logitsNode?: string } | undefined> {
  if (w.source === 'tfjs-graph') return { location: (w.path || w.url)!, logitsNode: w.logitsNode };
  if (!isGraphSource(w) || w.source !== 'published') return undefined;
  return { location: await preparePublished(w.id, { ...opts, cacheDir: w.cacheDir || opts.cacheDir }) };
}
