/**
 * The worker side of the model cache: networks live in the worker that runs their forward
 * passes (lib/compute/tasks names the tasks that reach them; model-cache is the main-thread side).
 * A hosted model is one of our networks or a TF.js graph model, both behind the forward wrapper's
 * SegNet; only ours have named variables, so only they take hot swaps and save.
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';
import { RawImage, ScoreMap } from '../contract';
import { InferOptions, planInference } from '../inference/plan';
import { deeplabNet, predictPlan, SegNet } from '../inference/predict';
import { ModelConfig } from '../models/config';
import { DeepLab, sameNetwork } from '../models/deeplab';
import { Preprocessing } from '../models/preprocess';
import { assignWeights, readSavedDir, readSavedUrl, saveModel } from '../weights/format';
import { readWeights } from '../weights/load';
import { GraphInfo, graphLocation, GraphSegmenter, loadGraphSegmenter } from '../weights/tfjs-graph';

interface Hosted {
  net: SegNet;
  /** Our network (hot swap and save need its variables); absent for a graph model. */
  model?: DeepLab;
  graph?: GraphSegmenter;
  spec: DeepLab['spec'];
  preprocessing: Preprocessing;
  classNames?: string[];
  params: number;
  dispose(): void;
}

const models = new Map<string, Hosted>();

export interface LoadResult {
  backend: string;
  params: number;
  spec: DeepLab['spec'];
  preprocessing: Preprocessing;
  classNames?: string[];
  loadMs: number;
  /** Set for a TF.js graph model: its input and logits nodes, classes and stride (it normalises its raw input itself). */
  graph?: GraphInfo;
}

export async function loadModel(key: string, config: ModelConfig): Promise<LoadResult> {
  const t0 = Date.now();
  if (!models.has(key)) {
    const where = await graphLocation(config.weights);
    if (where) models.set(key, hostGraph(config, await loadGraphSegmenter(where.location, { logitsNode: where.logitsNode, probeSize: config.warmupSize || undefined })));
  }
  if (!models.has(key)) {
    const saved = await readWeights(config.weights);
    // A saved model carries its own spec and preprocessing: they win over the config's.
    const model = new DeepLab(saved ? saved.manifest.spec : config.spec);
    try {
      if (saved) assignWeights(model, saved);
      const preprocessing = saved ? saved.manifest.preprocessing : config.preprocessing;
      const hosted: Hosted = {
        net: deeplabNet(model, preprocessing),
        model,
        spec: model.spec,
        preprocessing,
        classNames: saved?.manifest.classNames ?? config.classNames,
        params: model.paramCount(),
        dispose: () => model.dispose(),
      };
      const warm = config.warmupSize ?? 65;
      if (warm > 0) tf.tidy(() => model.forward(tf.zeros([1, warm, warm, 3])).logits.dataSync());
      models.set(key, hosted);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }
  const m = models.get(key)!;
  return { backend: tf.getBackend(), params: m.params, spec: m.spec, preprocessing: m.preprocessing, classNames: m.classNames, loadMs: Date.now() - t0, graph: m.graph?.info };
}

/** A graph model as a hosted model; its probe at load was its warm-up. The config's class names must fit its logits. */
function hostGraph(config: ModelConfig, graph: GraphSegmenter): Hosted {
  const names = config.classNames;
  if (names && names.length !== graph.classes) {
    graph.dispose();
    throw new Error(`the TF.js graph model's logits have ${graph.classes} classes but the model config names ${names.length}: set its classes to ${graph.classes} names`);
  }
  return {
    net: graph,
    graph,
    spec: { ...config.spec, classes: graph.classes },
    preprocessing: config.preprocessing,
    classNames: names,
    params: graph.info.params,
    dispose: () => graph.dispose(),
  };
}

function get(key: string): Hosted {
  const m = models.get(key);
  if (!m) throw new Error('model is not loaded in this worker (released or worker restarted)');
  return m;
}

/** A hosted model that is one of our networks; a graph model is refused by name for `what`. */
function ours(key: string, what: string): Hosted & { model: DeepLab } {
  const m = get(key);
  if (!m.model) {
    throw new Error(`${what} is for this package's networks: this model is a TF.js graph model (${m.graph?.info.location}), whose weights have no names of ours to take new values`);
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
export function inferMaps(args: InferArgs): ScoreMap[] {
  const m = get(args.key);
  const plan = planInference(args.image.width, args.image.height, m.net.planStride, args.options);
  return predictPlan(m.net, args.image, plan);
}

export function releaseModel(key: string): boolean {
  const m = models.get(key);
  if (!m) return false;
  m.dispose();
  models.delete(key);
  return true;
}

/** Where published weights are read from: a saved-model folder (a checkpoint, or a link to one) or a URL. */
export type SwapSource = { dir: string } | { url: string };

/** Hot swap: new weights into the live model's variables, no rebuild. */
export async function swapWeights(key: string, source: SwapSource): Promise<{ params: number }> {
  const m = ours(key, 'hot swap');
  // A published folder is a link switched atomically to each new checkpoint: resolved once, so
  // the manifest and the weights are read from one checkpoint even while the next is published.
  const saved = 'dir' in source ? readSavedDir(fs.realpathSync(source.dir)) : await readSavedUrl(source.url);
  if (!sameNetwork(saved.manifest.spec, m.model.spec)) throw new Error('the checkpoint was trained for another network (spec differs): it cannot be swapped into this model');
  assignWeights(m.model, saved);
  return { params: m.model.paramCount() };
}

export async function saveHosted(key: string, dir: string, meta?: Record<string, unknown>): Promise<void> {
  const m = ours(key, 'saving');
  await saveModel(m.model, dir, m.preprocessing, { classNames: m.classNames, meta });
}

/** Keys of the models this worker holds (tests look). */
export function loadedKeys(): string[] {
  return [...models.keys()];
}
