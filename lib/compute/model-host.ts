/**
 * The worker side of the model cache: networks live in the worker that runs their forward
 * passes (lib/compute/tasks names the tasks that reach them; model-cache is the main-thread side).
 * A hosted model is one of our networks, a TF.js graph model or an ONNX file, all behind the
 * forward wrapper's SegNet; only ours have named variables, so only they take hot swaps and save.
 *
 * The engine is chosen per model (lib/engine/engine-choice): one of our networks runs on tfjs or,
 * exported to ONNX (kept in memory, cached on disk next to its weights), on ONNX Runtime; the tfjs
 * network stays the source of truth for its weights (save, hot swap). A hot swap on ONNX Runtime
 * builds the new session first, then switches, then releases the old one: tasks run one at a time
 * in a worker, so no forward pass sees a half-swapped model and none is refused.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';
import { RawImage, ScoreMap } from '../contract';
import { resolvePreference, tfjsOnGpu } from '../engine/backend';
import { chooseEngine, describeCandidate, EngineCandidate, engineCandidates, TryResult } from '../engine/engine-choice';
import { cudaProviderInstalled, createSession, loadOrt, ortAvailable, OrtProvider, OrtSession, ortThreads } from '../engine/onnxruntime';
import { alignsCorners, InferOptions, planInference } from '../inference/plan';
import { OrtSegNet } from '../inference/ort-net';
import { deeplabNet, forwardNet, predictPlan, SegNet } from '../inference/predict';
import { ModelConfig, WeightsSource } from '../models/config';
import { DeepLab, ModelSpec, normalizeSpec, sameNetwork } from '../models/deeplab';
import { normalize, Preprocessing, PREPROCESSINGS } from '../models/preprocess';
import { assignWeights, readSavedDir, readSavedUrl, SavedWeights, saveModel } from '../weights/format';
import { readWeights } from '../weights/load';
import { exporterFingerprint, onnxCacheFolder, onnxCacheKey, readCachedOnnx, writeCachedOnnx } from '../weights/onnx-cache';
import { META_CLASS_NAMES, META_LOGIT_STRIDE, META_PREPROCESSING, META_SPEC, OnnxIo } from '../weights/onnx-file';
import { GraphInfo, graphLocation, GraphSegmenter, loadGraphSegmenter } from '../weights/tfjs-graph';

/** The exporter (lib/models/onnx/export, with protobufjs), loaded on first use: a worker serving tfjs only never needs it. */
type Exporter = typeof import('../models/onnx/export');
function exporter(): Exporter {
  return require('../models/onnx/export') as Exporter;
}

type Engine = 'tfjs' | 'onnxruntime';

interface Hosted {
  net: SegNet;
  /** Our network (hot swap and save need its variables); absent for a graph or an ONNX file. */
  model?: DeepLab;
  graph?: GraphSegmenter;
  /** The ONNX Runtime network serving the forward passes, when the engine is ONNX Runtime. */
  ort?: OrtSegNet;
  /** What the model is, for refusals by name. */
  what?: string;
  engine: Engine;
  backend: string;
  engineNote?: string;
  onnx?: OnnxLoad;
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames?: string[];
  params: number;
  dispose(): Promise<void>;
}

const models = new Map<string, Hosted>();

/** Where an ONNX Runtime session's model came from. */
export interface OnnxLoad {
  /** export: made from the network now; cache: read from the disk cache; file: an ONNX weights source. */
  from: 'export' | 'cache' | 'file';
  file?: string;
  /** Why the export could not be cached (read-only weights folder). */
  cacheError?: string;
  /** Ops cut from the end of a foreign graph (weights/onnx-file). */
  trimmed?: string[];
}

export interface LoadResult {
  /** The engine as the node status names it: the tfjs backend ("wasm") or "onnxruntime (cpu)". */
  backend: string;
  engine: Engine;
  /** ONNX Runtime's execution provider. */
  provider?: OrtProvider;
  /** Why the engine asked for was not taken (a CUDA provider that did not load, a failed export). */
  engineNote?: string;
  params: number;
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames?: string[];
  logitStride: number;
  alignCorners: boolean;
  loadMs: number;
  /** Set for a TF.js graph model: its input and logits nodes, classes and stride (it normalises its raw input itself). */
  graph?: GraphInfo;
  onnx?: OnnxLoad;
}

let workerCount = 1;
/** Set by the worker's entry point: the pool's size, which ONNX Runtime's threads per session are divided by. */
export function configureHost(opts: { workers?: number }): void {
  if (opts.workers && opts.workers > 0) workerCount = opts.workers;
}

/** Whether the CUDA provider failed in this thread already (it fails the same way for every model). */
let cudaFailure: string | undefined;

async function ortSession(bytes: Uint8Array, provider: OrtProvider): Promise<OrtSession> {
  return createSession(bytes, { provider, threads: ortThreads(workerCount) });
}

/**
 * Tries one ONNX Runtime candidate: the session over `bytes()` on that provider, or why not.
 * `askedCuda`: the preference named CUDA, so it is tried even without the provider files and its
 * failure is reported.
 */
async function tryOrt(c: EngineCandidate & { engine: 'onnxruntime' }, bytes: () => Promise<Uint8Array>, askedCuda: boolean): Promise<TryResult<OrtSession>> {
  if (!ortAvailable()) {
    let why = 'onnxruntime-node is not installed';
    try {
      loadOrt();
    } catch (err) {
      why = (err as Error).message;
    }
    return { ok: false, reason: why, quiet: true };
  }
  if (c.provider === 'cuda') {
    if (cudaFailure) return { ok: false, reason: cudaFailure, quiet: !askedCuda };
    if (!askedCuda && !cudaProviderInstalled()) return { ok: false, reason: 'its CUDA provider is not installed', quiet: true };
  }
  let b: Uint8Array;
  try {
    b = await bytes();
  } catch (err) {
    return { ok: false, reason: `export to ONNX failed: ${(err as Error).message}` };
  }
  try {
    return { ok: true, value: await ortSession(b, c.provider) };
  } catch (err) {
    const reason = `${c.provider === 'cuda' ? 'the CUDA provider did not load' : 'the session could not be created'}: ${(err as Error).message.split('\n')[0]}`;
    if (c.provider === 'cuda') cudaFailure = reason;
    return { ok: false, reason };
  }
}

function tfjsAvailable(c: EngineCandidate & { engine: 'tfjs' }): TryResult<null> {
  const now = tf.getBackend();
  const ok = c.backend === 'tensorflow-gpu' ? tfjsOnGpu() : now === c.backend && !(c.backend === 'tensorflow' && tfjsOnGpu());
  return ok ? { ok: true, value: null } : { ok: false, reason: `this worker runs tfjs on ${now}`, quiet: true };
}

/** The note a load reports: why the engine asked for (or expected) was passed over, where that says something. */
function noteOf(pref: string, chosen: EngineCandidate, notes: string[]): string | undefined {
  if (!notes.length) return undefined;
  return `${pref === 'auto' ? '' : `asked for ${pref}: `}${notes.join('; ')}; running on ${describeCandidate(chosen)}`;
}

function backendText(chosen: EngineCandidate, notes: string[]): string {
  if (chosen.engine === 'tfjs') return tf.getBackend();
  const cudaFailed = chosen.provider === 'cpu' && notes.some((n) => n.startsWith('onnxruntime (cuda)'));
  return `onnxruntime (${chosen.provider}${cudaFailed ? ', CUDA did not load' : ''})`;
}

export async function loadModel(key: string, config: ModelConfig): Promise<LoadResult> {
  const t0 = Date.now();
  if (!models.has(key)) {
    const where = await graphLocation(config.weights);
    let hosted: Hosted;
    if (where) hosted = await hostGraph(config, where);
    else if (config.weights.source === 'onnx') hosted = await hostOnnxFile(config, config.weights);
    else hosted = await hostOurs(config);
    models.set(key, hosted);
  }
  const m = models.get(key)!;
  return {
    backend: m.backend, engine: m.engine, provider: m.ort?.provider, engineNote: m.engineNote,
    params: m.params, spec: m.spec, preprocessing: m.preprocessing, classNames: m.classNames,
    logitStride: m.net.logitStride, alignCorners: m.net.alignCorners,
    loadMs: Date.now() - t0, graph: m.graph?.info, onnx: m.onnx,
  };
}

/** A graph model as a hosted model; its probe at load was its warm-up. The config's class names must fit its logits. */
async function hostGraph(config: ModelConfig, where: { location: string; logitsNode?: string }): Promise<Hosted> {
  const pref = resolvePreference(config.backend);
  await chooseEngine(engineCandidates(pref, 'tfjs-graph'), async (c) => (c.engine === 'tfjs' ? tfjsAvailable(c) : { ok: false, reason: 'not for a TF.js graph', quiet: true }));
  const graph = await loadGraphSegmenter(where.location, { logitsNode: where.logitsNode, probeSize: config.warmupSize || undefined });
  const names = config.classNames;
  if (names && names.length !== graph.classes) {
    graph.dispose();
    throw new Error(`the TF.js graph model's logits have ${graph.classes} classes but the model config names ${names.length}: set its classes to ${graph.classes} names`);
  }
  return {
    net: graph,
    graph,
    what: `a TF.js graph model (${graph.info.location})`,
    engine: 'tfjs',
    backend: tf.getBackend(),
    engineNote: pref.startsWith('onnxruntime') ? `asked for ${pref}: a TF.js graph model runs on tfjs; running on ${tf.getBackend()}` : undefined,
    spec: { ...config.spec, classes: graph.classes },
    preprocessing: config.preprocessing,
    classNames: names,
    params: graph.info.params,
    dispose: async () => graph.dispose(),
  };
}

/** What an export says of itself beside the graph (metadata): a cached file is a complete ONNX model. */
interface ExportMeta {
  preprocessing: Preprocessing;
  classNames?: string[];
}

/** The exported graph of our network: from the disk cache when these weights were exported before, else exported now (and cached). */
function exportedBytes(model: DeepLab, meta: ExportMeta, saved: SavedWeights | undefined, source: WeightsSource, load: OnnxLoad): Uint8Array {
  const ex = exporter();
  const folder = saved ? onnxCacheFolder(source) : undefined;
  const key = folder && saved ? onnxCacheKey(`${exporterFingerprint()} ${JSON.stringify(meta)}`, model.spec, saved.data) : undefined;
  if (folder && key) {
    const hit = readCachedOnnx(folder, key);
    if (hit) {
      Object.assign(load, { from: 'cache', file: hit.file });
      return hit.bytes;
    }
  }
  const bytes = ex.exportOnnx(model, meta);
  load.from = 'export';
  if (folder && key) {
    const w = writeCachedOnnx(folder, key, bytes);
    if (w.file) load.file = w.file;
    else load.cacheError = w.error;
  }
  return bytes;
}

/** The I/O of our exports (lib/models/onnx/export): NHWC float input already normalised, logits at the model's stride. */
function ourIo(): OnnxIo {
  const ex = exporter();
  return { input: ex.ONNX_INPUT, inputType: 'float32', layout: 'nhwc', batch: null, height: null, width: null, output: ex.ONNX_OUTPUT, outputKind: 'logits', trimmed: [], metadata: {}, ours: true, params: 0 };
}

function ortNetOfOurs(model: DeepLab, pre: Preprocessing, session: OrtSession, provider: OrtProvider): OrtSegNet {
  const tfNet = deeplabNet(model, pre);
  return new OrtSegNet(session, ourIo(), provider, {
    normalize: tfNet.normalize, padValue: tfNet.padValue, logitStride: tfNet.logitStride, planStride: tfNet.planStride, alignCorners: tfNet.alignCorners,
  });
}

/** First runs allocate: one small pass after load, so the first real frame is not the slow one. */
async function warmUp(net: SegNet, size: number): Promise<void> {
  if (size <= 0) return;
  const s = Math.max(1, Math.round((size - 1) / net.planStride)) * net.planStride + 1;
  const x = tf.zeros([1, s, s, 3]) as tf.Tensor4D;
  try {
    (await forwardNet(net, x)).dispose();
  } finally {
    x.dispose();
  }
}

async function hostOurs(config: ModelConfig): Promise<Hosted> {
  const saved = await readWeights(config.weights);
  // A saved model carries its own spec and preprocessing: they win over the config's.
  const model = new DeepLab(saved ? saved.manifest.spec : config.spec);
  let session: OrtSession | undefined;
  try {
    if (saved) assignWeights(model, saved);
    const preprocessing = saved ? saved.manifest.preprocessing : config.preprocessing;
    const classNames = saved?.manifest.classNames ?? config.classNames;
    const pref = resolvePreference(config.backend);
    const onnx: OnnxLoad = { from: 'export' };
    let bytes: Uint8Array | undefined;
    const getBytes = async (): Promise<Uint8Array> => (bytes ??= exportedBytes(model, { preprocessing, classNames }, saved, config.weights, onnx));
    const choice = await chooseEngine(engineCandidates(pref, 'ours'), async (c): Promise<TryResult<OrtSession | null>> => {
      if (c.engine === 'tfjs') return tfjsAvailable(c);
      const r = await tryOrt(c, getBytes, pref === 'onnxruntime-cuda');
      if (r.ok || c.provider !== 'cpu' || onnx.from !== 'cache' || !onnx.file) return r;
      // A cached export ONNX Runtime cannot read (damaged on disk): exported again, once.
      fs.rmSync(onnx.file, { force: true });
      bytes = undefined;
      Object.assign(onnx, { from: 'export', file: undefined });
      return tryOrt(c, getBytes, false);
    });
    session = choice.value ?? undefined;
    const c = choice.candidate;
    const ort = session && c.engine === 'onnxruntime' ? ortNetOfOurs(model, preprocessing, session, c.provider) : undefined;
    const net = ort ?? deeplabNet(model, preprocessing);
    const hosted: Hosted = {
      net, model, ort,
      engine: ort ? 'onnxruntime' : 'tfjs',
      backend: backendText(c, choice.notes),
      engineNote: noteOf(pref, c, choice.notes),
      onnx: ort ? onnx : undefined,
      spec: model.spec,
      preprocessing,
      classNames,
      params: model.paramCount(),
      dispose: async () => {
        model.dispose();
        await hosted.ort?.release();
      },
    };
    await warmUp(net, config.warmupSize ?? 65);
    return hosted;
  } catch (err) {
    model.dispose();
    await session?.release().catch(() => undefined);
    throw err;
  }
}

function metaJson<T>(io: OnnxIo, key: string, where: string): T | undefined {
  const v = io.metadata[key];
  if (v === undefined) return undefined;
  try {
    return JSON.parse(v) as T;
  } catch {
    throw new Error(`${where}: its metadata "${key}" is not JSON`);
  }
}

/**
 * An ONNX file as a hosted model. This package's exports bring their spec, stride, align-corners
 * mode, preprocessing and classes in their metadata; another's file gets the config's preprocessing
 * (float input) or its raw 0..255 pixels (integer input: it normalises inside), and its classes
 * and stride are read from a probe pass (which is also the warm-up).
 */
async function hostOnnxFile(config: ModelConfig, w: Extract<WeightsSource, { source: 'onnx' }>): Promise<Hosted> {
  // The reader (onnx-proto, protobufjs) loads only for an ONNX source.
  const { readOnnxBytes, prepareOnnx } = await import('../weights/onnx-file');
  const { bytes, where } = await readOnnxBytes((w.path || w.url)!);
  const prepared = prepareOnnx(bytes, where, { output: w.output, layout: w.layout, outputKind: w.outputKind });
  const io = prepared.io;
  const pref = resolvePreference(config.backend);
  const choice = await chooseEngine(engineCandidates(pref, 'onnx'), async (c) =>
    c.engine === 'onnxruntime' ? tryOrt(c, async () => prepared.bytes, pref === 'onnxruntime-cuda') : { ok: false, reason: 'an ONNX model runs on ONNX Runtime', quiet: true });
  const session = choice.value;
  const provider = (choice.candidate as { provider: OrtProvider }).provider;
  try {
    const ownSpec = io.ours ? metaJson<Partial<ModelSpec>>(io, META_SPEC, where) : undefined;
    const ownPre = io.metadata[META_PREPROCESSING] as Preprocessing | undefined;
    if (ownPre !== undefined && !PREPROCESSINGS.includes(ownPre)) throw new Error(`${where}: unknown preprocessing "${ownPre}" in its metadata`);
    const preprocessing = ownPre ?? config.preprocessing;
    const raw = io.inputType !== 'float32';
    const normalizeFn = raw ? (rgb: tf.Tensor4D) => tf.cast(rgb, 'float32') as tf.Tensor4D : (rgb: tf.Tensor4D) => normalize(rgb, preprocessing);
    const padValue = raw ? 127.5 : 0;
    const probe = await probeOnnx(session, io, padValue, Number(io.metadata[META_LOGIT_STRIDE]) || undefined, config.warmupSize || 65);
    const spec = ownSpec ? normalizeSpec({ ...ownSpec, classes: probe.classes }) : { ...config.spec, classes: probe.classes };
    const alignCorners = io.alignCorners ?? (ownSpec ? alignsCorners(spec) : true);
    const net = new OrtSegNet(session, io, provider, { normalize: normalizeFn, padValue, logitStride: probe.stride, planStride: ownSpec ? spec.outputStride : probe.stride, alignCorners });
    const names = config.classNames && !io.ours ? config.classNames : metaJson<string[]>(io, META_CLASS_NAMES, where) ?? config.classNames;
    if (names && names.length !== probe.classes) {
      throw new Error(`the ONNX model's logits have ${probe.classes} classes but ${io.ours ? 'its metadata' : 'the model config'} names ${names.length}: set the classes to ${probe.classes} names`);
    }
    return {
      net, ort: net,
      what: `an ONNX model (${where})`,
      engine: 'onnxruntime',
      backend: backendText(choice.candidate, choice.notes),
      engineNote: noteOf(pref, choice.candidate, choice.notes),
      onnx: { from: 'file', file: where, trimmed: io.trimmed.length ? io.trimmed : undefined },
      spec, preprocessing, classNames: names,
      params: io.params,
      dispose: () => net.release(),
    };
  } catch (err) {
    await session.release().catch(() => undefined);
    throw err;
  }
}

/** One pass at a known size: the logits' classes and stride (input pixels per cell). */
async function probeOnnx(session: OrtSession, io: OnnxIo, padValue: number, knownStride: number | undefined, size: number): Promise<{ classes: number; stride: number }> {
  const ph = io.height ?? Math.max(33, size);
  const pw = io.width ?? Math.max(33, size);
  const net = new OrtSegNet(session, io, 'cpu', { normalize: (x) => x, padValue, logitStride: knownStride ?? 1, planStride: 1, alignCorners: true });
  const x = tf.fill([1, ph, pw, 3], padValue) as tf.Tensor4D;
  let y: tf.Tensor4D | undefined;
  try {
    // The probe reads the raw output: the crop of a fixed-size input is not wanted here.
    y = await net.run(x);
    const [, h, w, classes] = y.shape;
    if (knownStride) return { classes, stride: knownStride };
    const strides = [[ph, h], [pw, w]].filter(([, c]) => c > 1).map(([f, c]) => (f - 1) / (c - 1));
    const stride = strides.length ? Math.max(1, Math.round(Math.max(...strides))) : Math.max(ph, pw);
    return { classes, stride };
  } catch (err) {
    throw new Error(`running the ONNX model on a ${pw}x${ph} probe image failed: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    x.dispose();
    y?.dispose();
  }
}

function get(key: string): Hosted {
  const m = models.get(key);
  if (!m) throw new Error('model is not loaded in this worker (released or worker restarted)');
  return m;
}

/** A hosted model that is one of our networks; a graph or an ONNX file is refused by name for `what`. */
function ours(key: string, what: string): Hosted & { model: DeepLab } {
  const m = get(key);
  if (!m.model) {
    throw new Error(`${what} is for this package's networks: this model is ${m.what}, whose weights have no names of ours to take new values`);
  }
  return m as Hosted & { model: DeepLab };
}

export interface InferArgs {
  key: string;
  image: RawImage;
  /** The deeplab-infer node's options; the runs are planned here, where the output stride is known. */
  options: Partial<InferOptions>;
}

/** Runs every scale (and flip) of the plan; returns one logits ScoreMap per run. */
export function inferMaps(args: InferArgs): Promise<ScoreMap[]> {
  const m = get(args.key);
  const plan = planInference(args.image.width, args.image.height, m.net.planStride, args.options);
  return predictPlan(m.net, args.image, plan);
}

export async function releaseModel(key: string): Promise<boolean> {
  const m = models.get(key);
  if (!m) return false;
  models.delete(key);
  await m.dispose();
  return true;
}

/** Where published weights are read from: a saved-model folder (a checkpoint, or a link to one) or a URL. */
export type SwapSource = { dir: string } | { url: string };

export interface SwapResult {
  params: number;
  /** The session was rebuilt (ONNX Runtime), or the variables took the weights in place (tfjs). */
  rebuilt: boolean;
}

/**
 * Hot swap: new weights into the live model's variables. On ONNX Runtime the network is exported
 * again and a new session built before the switch; the old session is released after it.
 */
export async function swapWeights(key: string, source: SwapSource): Promise<SwapResult> {
  const m = ours(key, 'hot swap');
  // A published folder is a link switched atomically to each new checkpoint: resolved once, so
  // the manifest and the weights are read from one checkpoint even while the next is published.
  const saved = 'dir' in source ? readSavedDir(fs.realpathSync(source.dir)) : await readSavedUrl(source.url);
  if (!sameNetwork(saved.manifest.spec, m.model.spec)) throw new Error('the checkpoint was trained for another network (spec differs): it cannot be swapped into this model');
  assignWeights(m.model, saved);
  const old = m.ort;
  if (!old) return { params: m.model.paramCount(), rebuilt: false };
  let next: OrtSegNet | undefined;
  try {
    const session = await ortSession(exporter().exportOnnx(m.model, { preprocessing: m.preprocessing, classNames: m.classNames }), old.provider);
    next = ortNetOfOurs(m.model, m.preprocessing, session, old.provider);
    await warmUp(next, 33);
  } catch (err) {
    await next?.release().catch(() => undefined);
    // The variables hold the new weights: serve them on tfjs rather than the old weights on ONNX Runtime.
    m.ort = undefined;
    m.net = deeplabNet(m.model, m.preprocessing);
    m.engine = 'tfjs';
    m.backend = tf.getBackend();
    m.engineNote = `the ONNX Runtime session could not be rebuilt for the new weights (${(err as Error).message.split('\n')[0]}): running on ${m.backend}`;
    await old.release();
    throw new Error(m.engineNote);
  }
  m.ort = next;
  m.net = next;
  m.onnx = { from: 'export' };
  await old.release();
  return { params: m.model.paramCount(), rebuilt: true };
}

export async function saveHosted(key: string, dir: string, meta?: Record<string, unknown>): Promise<void> {
  const m = ours(key, 'saving');
  await saveModel(m.model, dir, m.preprocessing, { classNames: m.classNames, meta });
}

/** Keys of the models this worker holds (tests look). */
export function loadedKeys(): string[] {
  return [...models.keys()];
}
