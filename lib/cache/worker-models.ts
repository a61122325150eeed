/**
 * The worker side of the model cache: networks live in the worker that runs their forward
 * passes. Tasks: load, infer, swap weights, save, release.
 */
import * as tf from '@tensorflow/tfjs';
import { RawImage, ScoreMap } from '../contract';
import { DeepLab, sameNetwork } from '../models/deeplab';
import { ModelConfig } from '../models/config';
import { normalize, Preprocessing } from '../models/preprocess';
import { assignWeights, readSavedDir, readSavedUrl, saveModel } from '../weights/format';
import { readWeights } from '../weights/load';
import { registerTasks } from '../worker/tasks';
import { transferablesOf } from '../worker/protocol';
import { InferPlan, planInference } from './inference-plan';

interface Loaded {
  model: DeepLab;
  preprocessing: Preprocessing;
  classNames?: string[];
  /** True where the model's own layout upsamples with half-pixel centres (torchvision). */
  halfPixel: boolean;
}

const models = new Map<string, Loaded>();

export interface LoadResult {
  backend: string;
  params: number;
  spec: DeepLab['spec'];
  preprocessing: Preprocessing;
  classNames?: string[];
  loadMs: number;
}

export async function loadModel(key: string, config: ModelConfig): Promise<LoadResult> {
  const t0 = Date.now();
  const existing = models.get(key);
  if (!existing) {
    const saved = await readWeights(config.weights);
    // A saved model carries its own spec and preprocessing: they win over the config's.
    const model = new DeepLab(saved ? saved.manifest.spec : config.spec);
    try {
      if (saved) assignWeights(model, saved);
      const loaded: Loaded = {
        model,
        preprocessing: saved ? saved.manifest.preprocessing : config.preprocessing,
        classNames: saved?.manifest.classNames ?? config.classNames,
        halfPixel: model.spec.layout === 'torchvision',
      };
      const warm = config.warmupSize ?? 65;
      if (warm > 0) tf.tidy(() => model.forward(tf.zeros([1, warm, warm, 3])).logits.dataSync());
      models.set(key, loaded);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }
  const m = models.get(key)!;
  return { backend: tf.getBackend(), params: m.model.paramCount(), spec: m.model.spec, preprocessing: m.preprocessing, classNames: m.classNames, loadMs: Date.now() - t0 };
}

function get(key: string): Loaded {
  const m = models.get(key);
  if (!m) throw new Error('model is not loaded in this worker (released or worker restarted)');
  return m;
}

export interface InferArgs {
  key: string;
  image: RawImage;
  plan: Omit<InferPlan, 'runs'> & Partial<Pick<InferPlan, 'runs'>>;
}

/** Runs every scale (and flip) of the plan; returns one logits ScoreMap per run. */
export function infer(args: InferArgs): ScoreMap[] {
  const m = get(args.key);
  const plan = planInference(args.image.width, args.image.height, m.model.spec.outputStride, args.plan);
  const { image } = args;
  const maps: ScoreMap[] = [];
  const src = tf.tensor4d(image.data, [1, image.height, image.width, 3], 'int32');
  try {
    for (const run of plan.runs) {
      const batch = tf.tidy(() => {
        const x = normalize(src as tf.Tensor4D, m.preprocessing);
        const resized = run.height === image.height && run.width === image.width
          ? x
          : tf.image.resizeBilinear(x, [run.height, run.width], !m.halfPixel, m.halfPixel);
        // Mirror before padding so both copies keep the image in the top-left corner.
        const both = plan.flip ? tf.concat([resized, tf.reverse(resized, 2)], 0) : resized;
        return run.padBottom || run.padRight ? tf.pad(both, [[0, 0], [0, run.padBottom], [0, run.padRight], [0, 0]]) : both;
      });
      const logits = tf.tidy(() => m.model.forward(batch as tf.Tensor4D).logits);
      batch.dispose();
      const [n, lh, lw, classes] = logits.shape;
      // Keep only the cells that cover the image (not the padding).
      const ch = Math.min(lh, Math.round(((run.height - 1) / (run.height + run.padBottom - 1)) * (lh - 1)) + 1);
      const cw = Math.min(lw, Math.round(((run.width - 1) / (run.width + run.padRight - 1)) * (lw - 1)) + 1);
      const cropped = tf.tidy(() => (ch === lh && cw === lw ? logits.clone() : tf.slice(logits, [0, 0, 0, 0], [n, ch, cw, classes])));
      logits.dispose();
      const data = cropped.dataSync() as Float32Array;
      cropped.dispose();
      const per = ch * cw * classes;
      for (let b = 0; b < n; b++) {
        const flipped = b === 1;
        const mapData = n === 1 ? data : data.slice(b * per, (b + 1) * per);
        maps.push({ width: cw, height: ch, classes, data: mapData, kind: 'logits', stride: m.model.logitStride, scale: run.scale, flipped });
      }
    }
  } finally {
    src.dispose();
  }
  return maps;
}

export function releaseModel(key: string): boolean {
  const m = models.get(key);
  if (!m) return false;
  m.model.dispose();
  models.delete(key);
  return true;
}

/** Hot swap: new weights into the live model's variables, no rebuild. */
export async function swapWeights(key: string, source: { dir?: string; url?: string }): Promise<{ params: number }> {
  const m = get(key);
  const saved = source.dir ? readSavedDir(source.dir) : await readSavedUrl(source.url!);
  if (!sameNetwork(saved.manifest.spec, m.model.spec)) throw new Error('the checkpoint was trained for another network (spec differs): it cannot be swapped into this model');
  assignWeights(m.model, saved);
  return { params: m.model.paramCount() };
}

export function loadedKeys(): string[] {
  return [...models.keys()];
}

registerTasks({
  'model.load': async (a: { key: string; config: ModelConfig }) => ({ result: await loadModel(a.key, a.config) }),
  'model.infer': (a: InferArgs) => {
    const maps = infer(a);
    return { result: maps, transfer: transferablesOf(...maps.map((m) => m.data)) };
  },
  'model.release': (a: { key: string }) => ({ result: releaseModel(a.key) }),
  'model.swap': async (a: { key: string; dir?: string; url?: string }) => ({ result: await swapWeights(a.key, a) }),
  'model.save': async (a: { key: string; dir: string; meta?: Record<string, unknown> }) => {
    const m = get(a.key);
    return { result: await saveModel(m.model, a.dir, m.preprocessing, { classNames: m.classNames, meta: a.meta }) };
  },
  'model.list': () => ({ result: loadedKeys() }),
});
