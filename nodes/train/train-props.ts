/**
 * The train node's editor properties (and a start message's overrides) -> a training run.
 * Every property may be absent: blank numbers take the default of the chosen data source, the
 * DeepLab recipe for real data and a quick schedule for the synthetic demo, so a bare train
 * node trains the demo network on generated shapes when it gets "start".
 */
import * as fs from 'fs';
import * as path from 'path';
import { boolProp, intProp, isBlank, numberProp } from '../_shared/props';
import { ListOptions } from '../../lib/data/dataset';
import { SYNTHETIC_MAX_CLASSES, syntheticClassNames, SyntheticOptions } from '../../lib/data/synthetic';
import { ModelConfig, normalizeModelConfig, WeightsSource } from '../../lib/models/config';
import { findPublished } from '../../lib/weights/catalogue';
import { CLASS_PRESETS } from '../../lib/data/palette';
import { DataSpec, normalizeTrainConfig, RECIPE, TrainConfig, TrainConfigInput } from '../../lib/training/config';
import { CrfRequest, ResumeMode } from '../../lib/training/protocol';

export interface TrainProps {
  source?: string;
  root?: string;
  dir?: string;
  layout?: string;
  trainSplit?: string;
  valSplit?: string;
  imagesDir?: string;
  masksDir?: string;
  valDir?: string;
  trainLimit?: string | number;
  synClasses?: string | number;
  synSize?: string | number;
  synTrain?: string | number;
  synVal?: string | number;
  cropSize?: string | number;
  scaleMin?: string | number;
  scaleMax?: string | number;
  mirror?: string | boolean;
  batchSize?: string | number;
  iterSize?: string | number;
  maxIter?: string | number;
  lr?: string | number;
  lrPower?: string | number;
  momentum?: string | number;
  weightDecay?: string | number;
  backboneLrMult?: string | number;
  headLrMult?: string | number;
  biasLrFactor?: string | number;
  freezeBN?: string | boolean;
  msc?: string | boolean;
  checkpointDir?: string;
  checkpointEvery?: string | number;
  keep?: string | number;
  resume?: string;
  publish?: string | boolean;
  evalEvery?: string | number;
  evalLimit?: string | number;
  evalRule?: string;
  learnCrf?: string | boolean;
  crfImages?: string | number;
  progressEvery?: string | number;
  seed?: string | number;
  /** Start from other weights than the model config's: model (default), published, checkpoint or dir. */
  initFrom?: string;
  initPublishedId?: string;
  initPath?: string;
  initLayout?: string;
}

export interface TrainSetup {
  config: TrainConfig;
  resume: ResumeMode;
  /** "Learn CRF next": the search that follows a finished run. */
  crfAfter?: CrfRequest;
  /** The search a "crf" command runs. */
  crf: CrfRequest;
}

export interface SetupContext {
  /** Node-RED's user directory: relative folders resolve against it. */
  userDir: string;
  nodeId: string;
  /** The deeplab-model config node's model, when one is selected. */
  model?: ModelConfig;
}

/** Quick schedule for the synthetic demo (a small network trained from scratch). */
const DEMO = { cropScale: [0.75, 1.25], batchSize: 8, iterSize: 1, maxIter: 300, lr: 0.02, weightDecay: 1e-4, evalEvery: 50, checkpointEvery: 100, progressEvery: 5 };

/** Option names a start message may override (msg.options / an object payload). */
export const OVERRIDABLE = [
  'cropSize', 'scaleMin', 'scaleMax', 'mirror', 'batchSize', 'iterSize', 'maxIter', 'lr', 'lrPower', 'momentum', 'weightDecay',
  'backboneLrMult', 'headLrMult', 'biasLrFactor', 'freezeBN', 'msc', 'checkpointEvery', 'keep', 'evalEvery', 'evalLimit',
  'progressEvery', 'seed', 'resume', 'learnCrf', 'crfImages', 'publish',
] as const;

/** The "initialise from" choice as a weights source (undefined: the model config's own weights). */
function initialWeights(p: TrainProps, userDir: string): WeightsSource | undefined {
  const from = isBlank(p.initFrom) || p.initFrom === 'model' ? 'model' : String(p.initFrom);
  if (from === 'model') return undefined;
  if (from === 'published') {
    const id = String(p.initPublishedId ?? '').trim();
    if (!id) throw new Error('initialise from published weights: choose a catalogue id');
    findPublished(id);
    return { source: 'published', id, cacheDir: path.join(userDir, 'deeplab-weights') };
  }
  const file = String(p.initPath ?? '').trim();
  if (!file) throw new Error(`initialise from a ${from === 'dir' ? 'saved model folder' : 'checkpoint file'}: set its path`);
  if (from === 'dir') return { source: 'dir', path: path.resolve(userDir, file) };
  if (from === 'checkpoint') return { source: 'checkpoint', path: path.resolve(userDir, file), layout: isBlank(p.initLayout) ? 'auto' : String(p.initLayout) };
  throw new Error(`initialise from must be model, published, checkpoint or dir, got "${from}"`);
}

export function trainSetupFromProps(props: TrainProps, ctx: SetupContext, overrides: Record<string, unknown> = {}): TrainSetup {
  for (const k of Object.keys(overrides)) {
    if (!(OVERRIDABLE as readonly string[]).includes(k)) throw new Error(`unknown option "${k}": a start message may set ${OVERRIDABLE.join(', ')}`);
  }
  const p: TrainProps = { ...props, ...(overrides as TrainProps) };
  const source = isBlank(p.source) ? 'synthetic' : String(p.source);
  if (source !== 'synthetic' && source !== 'folder') throw new Error(`data source must be synthetic or folder, got "${source}"`);
  const demo = source === 'synthetic';
  const seed = intProp(p.seed, 1, 'seed');

  let train: DataSpec;
  let val: DataSpec | undefined;
  let synClasses = 0;
  let synSize = 0;
  if (demo) {
    synClasses = intProp(p.synClasses, ctx.model?.spec.classes ?? 4, 'synthetic classes');
    if (synClasses < 2 || synClasses > SYNTHETIC_MAX_CLASSES) {
      const hint = ctx.model && isBlank(p.synClasses) ? ` (the model has ${synClasses} classes: synthetic data needs a model with at most ${SYNTHETIC_MAX_CLASSES})` : '';
      throw new Error(`synthetic classes must be 2..${SYNTHETIC_MAX_CLASSES}, got ${synClasses}${hint}`);
    }
    if (ctx.model && ctx.model.spec.classes !== synClasses) {
      throw new Error(`the model has ${ctx.model.spec.classes} classes but the synthetic data ${synClasses}: make them equal`);
    }
    synSize = intProp(p.synSize, 97, 'synthetic image size', { min: 8, max: 4096 });
    const options: SyntheticOptions = { width: synSize, height: synSize, classes: synClasses, seed };
    train = { kind: 'synthetic', count: intProp(p.synTrain, 200, 'synthetic training images', { min: 1 }), options };
    const nVal = intProp(p.synVal, 20, 'synthetic validation images', { min: 0 });
    // The validation images come from far along the same sequence: never seen in training.
    if (nVal > 0) val = { kind: 'synthetic', count: nVal, first: 1_000_000, options };
  } else {
    const root = path.resolve(ctx.userDir, String(p.root ?? '').trim() || '.');
    const dir = String(p.dir ?? '').trim();
    if (!dir) throw new Error('folder data: set the data set folder');
    const layout = isBlank(p.layout) ? 'auto' : String(p.layout) as ListOptions['layout'];
    const common: ListOptions = { layout, imagesDir: String(p.imagesDir ?? '').trim() || undefined, masksDir: String(p.masksDir ?? '').trim() || undefined };
    const limit = intProp(p.trainLimit, 0, 'training image limit', { min: 0 });
    train = { kind: 'folder', root, dir, list: { ...common, split: String(p.trainSplit ?? '').trim() || 'train' }, limit };
    const valSplit = String(p.valSplit ?? '').trim();
    const valDir = String(p.valDir ?? '').trim();
    // VOC: a split of the same folder ("-": none); folder pairs: another folder of the same shape.
    const isVoc = layout === 'voc' || (layout === 'auto' && fs.existsSync(path.join(root, dir, 'JPEGImages')));
    if (valDir) val = { kind: 'folder', root, dir: valDir, list: { ...common, split: valSplit || 'val' } };
    else if (isVoc && valSplit !== '-') val = { kind: 'folder', root, dir, list: { ...common, split: valSplit || 'val' } };
  }

  let model: ModelConfig;
  if (ctx.model) model = ctx.model;
  else if (demo) {
    model = normalizeModelConfig({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classes: synClasses, seed }, classNames: syntheticClassNames(synClasses) });
  } else {
    model = normalizeModelConfig({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 21 }, classNames: [...CLASS_PRESETS.voc21.names] });
  }

  const init = initialWeights(p, ctx.userDir);
  const d = demo ? DEMO : RECIPE;
  // A blank end of the scale range is "auto": the default, moved to the other end where that one is set beyond it.
  const scaleRange = { min: 0, minExclusive: true, max: 8 };
  const givenMin = isBlank(p.scaleMin) ? undefined : numberProp(p.scaleMin, d.cropScale[0], 'scale min', scaleRange);
  const givenMax = isBlank(p.scaleMax) ? undefined : numberProp(p.scaleMax, d.cropScale[1], 'scale max', scaleRange);
  const scaleMin = givenMin ?? Math.min(d.cropScale[0], givenMax ?? Infinity);
  const scaleMax = givenMax ?? Math.max(d.cropScale[1], givenMin ?? 0);
  const checkpointDir = path.resolve(ctx.userDir, String(p.checkpointDir ?? '').trim() || path.join('deeplab-training', ctx.nodeId.replace(/[^\w.-]/g, '_')));
  const input: TrainConfigInput = {
    model,
    init,
    train,
    val,
    cropSize: intProp(p.cropSize, demo ? synSize : RECIPE.crop, 'crop size', { min: 8, max: 4096 }),
    scaleMin,
    scaleMax,
    mirror: boolProp(p.mirror, true),
    batchSize: intProp(p.batchSize, d.batchSize, 'batch size', { min: 1 }),
    iterSize: intProp(p.iterSize, d.iterSize, 'iter size', { min: 1 }),
    maxIter: intProp(p.maxIter, d.maxIter, 'iterations', { min: 1 }),
    lr: numberProp(p.lr, d.lr, 'learning rate', { min: 0, minExclusive: true }),
    lrPower: numberProp(p.lrPower, 0.9, 'poly power', { min: 0 }),
    momentum: numberProp(p.momentum, 0.9, 'momentum', { min: 0, max: 1, maxExclusive: true }),
    weightDecay: numberProp(p.weightDecay, d.weightDecay, 'weight decay', { min: 0 }),
    backboneLrMult: numberProp(p.backboneLrMult, 1, 'backbone lr multiplier', { min: 0 }),
    headLrMult: numberProp(p.headLrMult, 10, 'head lr multiplier', { min: 0 }),
    biasLrFactor: numberProp(p.biasLrFactor, 2, 'bias lr factor', { min: 0 }),
    // Fine-tuning from trained weights freezes BN by default, as the published recipes do (batches are tiny here).
    freezeBN: boolProp(p.freezeBN, init !== undefined),
    msc: isBlank(p.msc) ? undefined : boolProp(p.msc, false),
    seed,
    checkpointDir,
    checkpointEvery: intProp(p.checkpointEvery, d.checkpointEvery, 'checkpoint every', { min: 0 }),
    keep: intProp(p.keep, 3, 'checkpoints kept', { min: 1 }),
    publish: boolProp(p.publish, true),
    evalEvery: intProp(p.evalEvery, d.evalEvery, 'evaluate every', { min: 0 }),
    evalLimit: intProp(p.evalLimit, 0, 'evaluation images', { min: 0 }),
    evalRule: (isBlank(p.evalRule) ? 'voc' : String(p.evalRule)) as TrainConfig['evalRule'],
    progressEvery: intProp(p.progressEvery, d.progressEvery, 'progress every', { min: 1 }),
  };
  const config = normalizeTrainConfig(input);
  const resume = (isBlank(p.resume) ? 'auto' : String(p.resume)) as ResumeMode;
  if (!['auto', 'never', 'require'].includes(resume)) throw new Error(`resume must be auto, never or require, got "${resume}"`);
  const crf: CrfRequest = { images: intProp(p.crfImages, 10, 'CRF images', { min: 1 }) };
  return { config, resume, crf, crfAfter: boolProp(p.learnCrf, false) ? crf : undefined };
}
