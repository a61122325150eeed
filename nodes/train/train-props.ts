/**
 * The train node's editor properties (and a start message's overrides) -> a training run.
 * Every property may be absent: blank numbers take the default of the preset (lib/training/presets),
 * which by default follows the data: a quick schedule for the synthetic demo, the small-data CPU
 * recipe for the hard synthetic set, the published DeepLab v2 recipe (fine-tuned from ImageNet
 * where the network fits those weights) for folders. So a bare train node trains the demo network
 * on generated shapes when it gets "start".
 */
import * as fs from 'fs';
import * as path from 'path';
import { boolProp, intProp, isBlank, numberProp } from '../_shared/props';
import { ListOptions } from '../../lib/data/dataset';
import { SYNTHETIC_MAX_CLASSES, syntheticClassNames, SyntheticOptions, syntheticSet } from '../../lib/data/synthetic';
import { ModelConfig, normalizeModelConfig, WeightsSource } from '../../lib/models/config';
import { findPublished } from '../../lib/weights/catalogue';
import { CLASS_PRESETS } from '../../lib/data/palette';
import { DataSpec, normalizeTrainConfig, TrainConfig, TrainConfigInput } from '../../lib/training/config';
import { imagenetBackboneFor, isRealDataPreset, PresetName, PRESETS, SMALL_DATA } from '../../lib/training/presets';
import { CrfRequest, ResumeMode } from '../../lib/training/protocol';

export interface TrainProps {
  source?: string;
  /** auto (default: follows the data), small-data, v2 or v3plus: lib/training/presets. */
  preset?: string;
  /** The synthetic set: shapes (the demo, default) or hard-shapes. */
  synSet?: string;
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
  optimizer?: string;
  warmupIter?: string | number;
  /** auto, none or sqrt-inverse; a start message may give one weight per class. */
  classWeights?: string | number[];
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
  /**
   * Start from other weights than the model config's: model (default; with random weights and a
   * real-data preset, the catalogue's ImageNet backbone when it fits), scratch, published, checkpoint or dir.
   */
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

/** What blank numbers take: a preset's schedule (TrainConfig's fields; the crop defaults to the image size where absent). */
type Schedule = Pick<TrainConfig,
  'scaleMin' | 'scaleMax' | 'batchSize' | 'iterSize' | 'maxIter' | 'optimizer' | 'lr' | 'lrPower' | 'warmupIter' | 'momentum'
  | 'weightDecay' | 'backboneLrMult' | 'headLrMult' | 'biasLrFactor' | 'evalEvery' | 'checkpointEvery' | 'progressEvery'>
  & { cropSize?: number; classWeights: 'none' | 'sqrt-inverse' };

/** Quick schedule for the synthetic demo set (a small network trained from scratch; the crop is the image size). */
const DEMO: Schedule = {
  scaleMin: 0.75, scaleMax: 1.25, batchSize: 8, iterSize: 1, maxIter: 300, optimizer: 'sgd', lr: 0.02, lrPower: 0.9, warmupIter: 0,
  momentum: 0.9, weightDecay: 1e-4, backboneLrMult: 1, headLrMult: 10, biasLrFactor: 2, classWeights: 'none', evalEvery: 50, checkpointEvery: 100, progressEvery: 5,
};

const PRESET_NAMES = ['small-data', 'v2', 'v3plus'] as const;
const SYN_SETS = ['shapes', 'hard-shapes'] as const;
const OPTIMIZERS = ['sgd', 'adam'] as const;
const CLASS_WEIGHTS = ['none', 'sqrt-inverse'] as const;
const INIT_FROM = ['model', 'scratch', 'published', 'checkpoint', 'dir'] as const;

/** A select's value: blank or auto takes the fallback; anything else must be one of `allowed`. */
function choiceProp<T extends string>(value: unknown, fallback: T, allowed: readonly T[], name: string): T {
  if (isBlank(value)) return fallback;
  const s = String(value);
  if (!(allowed as readonly string[]).includes(s)) throw new Error(`${name} must be one of auto, ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return s as T;
}

/** Option names a start message may override (msg.options / an object payload). */
export const OVERRIDABLE = [
  'cropSize', 'scaleMin', 'scaleMax', 'mirror', 'batchSize', 'iterSize', 'maxIter', 'optimizer', 'lr', 'lrPower', 'warmupIter', 'momentum',
  'weightDecay', 'backboneLrMult', 'headLrMult', 'biasLrFactor', 'freezeBN', 'classWeights', 'msc', 'checkpointEvery', 'keep', 'evalEvery',
  'evalLimit', 'progressEvery', 'seed', 'resume', 'learnCrf', 'crfImages', 'publish',
] as const;

/** The preset a run takes: the chosen one, or by the data (auto). */
function presetFor(p: TrainProps, source: string, synSetName: string): PresetName | 'demo' {
  if (!isBlank(p.preset)) return choiceProp(p.preset, 'small-data', PRESET_NAMES, 'preset');
  if (source === 'folder') return 'v2';
  return synSetName === 'hard-shapes' ? 'small-data' : 'demo';
}

function scheduleOf(name: PresetName | 'demo'): Schedule {
  return name === 'demo' ? DEMO : (PRESETS[name] as Schedule);
}

/**
 * The "initialise from" choice as a weights source (undefined: the model config's own weights).
 * `imagenet`: the catalogue id to fine-tune from when the choice is the model's weights and they are random.
 */
function initialWeights(p: TrainProps, userDir: string, imagenet?: string): WeightsSource | undefined {
  const from = choiceProp(p.initFrom, 'model', INIT_FROM, 'initialise from');
  if (from === 'scratch') return undefined;
  if (from === 'model') return imagenet ? { source: 'published', id: imagenet, cacheDir: path.join(userDir, 'deeplab-weights') } : undefined;
  if (from === 'published') {
    const id = String(p.initPublishedId ?? '').trim();
    if (!id) throw new Error('initialise from published weights: choose a catalogue id');
    findPublished(id);
    return { source: 'published', id, cacheDir: path.join(userDir, 'deeplab-weights') };
  }
  const file = String(p.initPath ?? '').trim();
  if (!file) throw new Error(`initialise from a ${from === 'dir' ? 'saved model folder' : 'checkpoint file'}: set its path`);
  if (from === 'dir') return { source: 'dir', path: path.resolve(userDir, file) };
  return { source: 'checkpoint', path: path.resolve(userDir, file), layout: isBlank(p.initLayout) ? 'auto' : String(p.initLayout) };
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
  const synSetName = choiceProp(p.synSet, 'shapes', SYN_SETS, 'synthetic set');
  const set = demo ? syntheticSet(synSetName) : undefined;
  const presetName = presetFor(p, source, synSetName);
  const d = scheduleOf(presetName);

  let train: DataSpec;
  let val: DataSpec | undefined;
  let synClasses = 0;
  let synSize = 0;
  if (demo) {
    synClasses = intProp(p.synClasses, ctx.model?.spec.classes ?? set!.classes ?? 4, 'synthetic classes');
    if (synClasses < 2 || synClasses > SYNTHETIC_MAX_CLASSES) {
      const hint = ctx.model && isBlank(p.synClasses) ? ` (the model has ${synClasses} classes: synthetic data needs a model with at most ${SYNTHETIC_MAX_CLASSES})` : '';
      throw new Error(`synthetic classes must be 2..${SYNTHETIC_MAX_CLASSES}, got ${synClasses}${hint}`);
    }
    if (ctx.model && ctx.model.spec.classes !== synClasses) {
      throw new Error(`the model has ${ctx.model.spec.classes} classes but the synthetic data ${synClasses}: make them equal`);
    }
    synSize = intProp(p.synSize, set!.width ?? 97, 'synthetic image size', { min: 8, max: 4096 });
    const options: SyntheticOptions = { ...set, width: synSize, height: synSize, classes: synClasses, seed };
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

  const realData = presetName !== 'demo' && isRealDataPreset(presetName);
  let model: ModelConfig;
  if (ctx.model) model = ctx.model;
  else if (demo) {
    const width = presetName === 'demo' ? 0.125 : SMALL_DATA.width;
    model = normalizeModelConfig({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', width, classes: synClasses, seed }, classNames: syntheticClassNames(synClasses) });
  } else {
    // ImageNet's normalisation, so the real-data presets can fine-tune from torchvision's ImageNet MobileNetV2.
    model = normalizeModelConfig({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 21 }, preprocessing: realData ? 'imagenet' : undefined, classNames: [...CLASS_PRESETS.voc21.names] });
  }

  // The real-data presets fine-tune from the ImageNet backbone when the model's weights are random and fit it.
  const imagenet = realData && model.weights.source === 'random' ? imagenetBackboneFor(model) : undefined;
  const init = initialWeights(p, ctx.userDir, imagenet);
  // Weights the user did not choose: an error reading them says how to do without.
  const implicitImagenet = imagenet !== undefined && (isBlank(p.initFrom) || p.initFrom === 'model');
  // A blank end of the scale range is "auto": the preset's, moved to the other end where that one is set beyond it.
  const scaleRange = { min: 0, minExclusive: true, max: 8 };
  const givenMin = isBlank(p.scaleMin) ? undefined : numberProp(p.scaleMin, d.scaleMin, 'scale min', scaleRange);
  const givenMax = isBlank(p.scaleMax) ? undefined : numberProp(p.scaleMax, d.scaleMax, 'scale max', scaleRange);
  const scaleMin = givenMin ?? Math.min(d.scaleMin, givenMax ?? Infinity);
  const scaleMax = givenMax ?? Math.max(d.scaleMax, givenMin ?? 0);
  const checkpointDir = path.resolve(ctx.userDir, String(p.checkpointDir ?? '').trim() || path.join('deeplab-training', ctx.nodeId.replace(/[^\w.-]/g, '_')));
  const input: TrainConfigInput = {
    model,
    init,
    train,
    val,
    // Without a preset crop, the demo's is the image size.
    cropSize: intProp(p.cropSize, d.cropSize ?? synSize, 'crop size', { min: 8, max: 4096 }),
    scaleMin,
    scaleMax,
    mirror: boolProp(p.mirror, true),
    batchSize: intProp(p.batchSize, d.batchSize, 'batch size', { min: 1 }),
    iterSize: intProp(p.iterSize, d.iterSize, 'iter size', { min: 1 }),
    maxIter: intProp(p.maxIter, d.maxIter, 'iterations', { min: 1 }),
    optimizer: choiceProp(p.optimizer, d.optimizer, OPTIMIZERS, 'optimiser'),
    lr: numberProp(p.lr, d.lr, 'learning rate', { min: 0, minExclusive: true }),
    lrPower: numberProp(p.lrPower, d.lrPower, 'poly power', { min: 0 }),
    warmupIter: intProp(p.warmupIter, d.warmupIter, 'warm-up iterations', { min: 0 }),
    momentum: numberProp(p.momentum, d.momentum, 'momentum', { min: 0, max: 1, maxExclusive: true }),
    weightDecay: numberProp(p.weightDecay, d.weightDecay, 'weight decay', { min: 0 }),
    backboneLrMult: numberProp(p.backboneLrMult, d.backboneLrMult, 'backbone lr multiplier', { min: 0 }),
    headLrMult: numberProp(p.headLrMult, d.headLrMult, 'head lr multiplier', { min: 0 }),
    biasLrFactor: numberProp(p.biasLrFactor, d.biasLrFactor, 'bias lr factor', { min: 0 }),
    // A start message may give the weights themselves (one number per class).
    classWeights: Array.isArray(p.classWeights) ? p.classWeights as number[] : choiceProp(p.classWeights, d.classWeights, CLASS_WEIGHTS, 'class weights'),
    initHint: implicitImagenet
      ? `the preset "${presetName}" fine-tunes from the ImageNet backbone "${imagenet}" by default; ` +
        'to train without it, set "initialise from" to scratch (initFrom: "scratch") or take the small-data preset'
      : undefined,
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
