/**
 * What a training run is: the network (a ModelConfig, as the deeplab-model node describes it),
 * the data, the optimiser recipe and the loop's housekeeping. Plain data, so it travels to the
 * training worker and into checkpoints. Its defaults are RECIPE (below): the one statement of
 * them, which the train node's settings take too.
 */
import { LabelMap, RawImage } from '../contract';
import { ListOptions } from '../data/dataset';
import { SyntheticOptions } from '../data/synthetic';
import { ModelConfig, normalizeModelConfig, WeightsSource } from '../models/config';
import { ModelSpec } from '../models/deeplab';
import { MeanIoURule } from '../metrics/confusion';

/** Where samples come from. */
export type DataSpec =
  /** Generated on the fly: samples first..first+count-1 of the seeded synthetic set. */
  | { kind: 'synthetic'; count: number; first?: number; options?: SyntheticOptions }
  /** A VOC-layout folder or image/mask folder pairs under `root` (lib/data/dataset). */
  | { kind: 'folder'; root: string; dir: string; list?: ListOptions; limit?: number }
  /** Samples given as data (tests, flows that built their own set). */
  | { kind: 'memory'; samples: { id: string; image: RawImage; label: LabelMap }[] };

/**
 * The DeepLab recipe as kazuto1011's deeplab-pytorch trains it on VOC: SGD with momentum 0.9,
 * poly 0.9, lr 2.5e-4, weight decay 5e-4, crop 321, scale 0.5..1.5, mirror; backbone x1, head x10,
 * head biases x20 without weight decay. Its effective batch of 10 is taken as 2 crops x 5
 * accumulated passes rather than 5 x 2: a training pass over more than 2 crops of 321 exceeds the
 * WebAssembly heap (4 GB) for DeepLab v3+ MobileNetV2, and the sum of the gradients is the same.
 */
export const RECIPE = Object.freeze({
  crop: 321, cropScale: [0.5, 1.5], batchSize: 2, iterSize: 5, maxIter: 20000,
  lr: 2.5e-4, lrPower: 0.9, momentum: 0.9, weightDecay: 5e-4, backboneLrMult: 1, headLrMult: 10, biasLrFactor: 2,
  evalEvery: 1000, checkpointEvery: 1000, keep: 3, progressEvery: 10,
});

export type OptimizerName = 'sgd' | 'adam';

/** Where the loss is computed: on labels downsampled to the logits (v1/v2) or logits upsampled to the labels (v3/v3+). */
export type LossAt = 'auto' | 'logits' | 'labels';

export interface TrainConfig {
  model: ModelConfig;
  /**
   * Initial weights other than the model config's (fine-tuning from published weights or another
   * checkpoint): tensors of matching name and shape are copied, the rest (a classifier for other
   * classes, a head missing from an ImageNet backbone) keeps its initialisation.
   */
  init?: WeightsSource;
  /** Said after an error reading `init`: how to train without those weights (they were a default, not a choice). */
  initHint?: string;
  train: DataSpec;
  /** Validation data for mIoU every evalEvery iterations and for the CRF search. */
  val?: DataSpec;

  cropSize: number;
  scaleMin: number;
  scaleMax: number;
  mirror: boolean;

  batchSize: number;
  /** Gradient accumulation: sub-batches per iteration (effective batch batchSize * iterSize). */
  iterSize: number;
  maxIter: number;

  /** 'sgd': SGD with momentum, as the published recipes; 'adam': Adam with decoupled weight decay (small data on a CPU). */
  optimizer: OptimizerName;
  lr: number;
  /** Poly schedule lr * (1 - iter/maxIter)^lrPower. */
  lrPower: number;
  /** Linear warm-up of the learning rate over the first iterations (0: none). */
  warmupIter: number;
  /** SGD's momentum (Adam's beta1 is 0.9). */
  momentum: number;
  weightDecay: number;
  /** Learning-rate multipliers: backbone.* and head.* / aux.* parameters. */
  backboneLrMult: number;
  headLrMult: number;
  /** Biases learn at this factor times their group's rate (Caffe's lr_mult 2: head biases x20). */
  biasLrFactor: number;
  /** Weight decay on biases (off in the recipe). */
  biasDecay: boolean;
  /** Weight decay on BN scale and shift (off by default). */
  bnDecay: boolean;
  /** Frozen BN: running statistics used and kept, scale and shift not trained (DeepLab fine-tuning). */
  freezeBN: boolean;
  /**
   * Loss weights per class: 'none' (every pixel counts once), 'sqrt-inverse' (1/sqrt of each
   * class's pixel frequency in up to 64 training images: rare classes count more), or the weights.
   */
  classWeights: 'none' | 'sqrt-inverse' | number[];
  /** DeepLab v2 multi-scale training: loss over scales 1, 0.75, 0.5 and their max fusion. */
  msc: boolean;
  lossAt: LossAt;
  /** Weight of the auxiliary head's loss (torchvision layout with aux). */
  auxWeight: number;

  seed: number;

  checkpointDir?: string;
  /** Checkpoint every N iterations (0: only at the end and on stop). */
  checkpointEvery: number;
  /** Checkpoints kept (the newest K). */
  keep: number;
  /** Write the model files to <checkpointDir>/published for hot swapping after each checkpoint. */
  publish: boolean;

  /** Validation every N iterations (0: only at the end). */
  evalEvery: number;
  /** Validation images per evaluation (0: all). */
  evalLimit: number;
  evalRule: MeanIoURule;

  /** Progress events every N iterations. */
  progressEvery: number;
  /** Batches prepared ahead of the compute. */
  prefetch: number;
  /** Decode and augment in a separate thread (default) or in the training thread. */
  dataWorker: boolean;
}

export type TrainConfigInput = Partial<Omit<TrainConfig, 'model'>> & {
  model?: Parameters<typeof normalizeModelConfig>[0];
  train: DataSpec;
};

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(`training configuration: ${message}`);
}

function checkData(d: DataSpec | undefined, what: string): void {
  if (d === undefined) return;
  check(!!d && typeof d === 'object', `${what} must be a data description`);
  if (d.kind === 'synthetic') check(Number.isInteger(d.count) && d.count > 0, `${what}: synthetic count must be a positive integer, got ${d.count}`);
  else if (d.kind === 'folder') check(typeof d.root === 'string' && typeof d.dir === 'string', `${what}: a folder data set needs root and dir`);
  else if (d.kind === 'memory') check(Array.isArray(d.samples) && d.samples.length > 0, `${what}: no samples given`);
  else throw new Error(`training configuration: ${what} has unknown kind "${(d as { kind: string }).kind}" (synthetic, folder or memory)`);
}

/** Resolves where the loss is computed for a variant. */
export function lossAtFor(spec: ModelSpec, lossAt: LossAt): 'logits' | 'labels' {
  if (lossAt !== 'auto') return lossAt;
  return spec.variant === 'v1' || spec.variant === 'v2' ? 'labels' : 'logits';
}

/** Fills defaults and validates; throws an Error naming the first bad value. */
export function normalizeTrainConfig(c: TrainConfigInput): TrainConfig {
  const model = normalizeModelConfig(c.model ?? {});
  const out: TrainConfig = {
    model,
    init: c.init,
    initHint: c.initHint,
    train: c.train,
    val: c.val,
    cropSize: c.cropSize ?? RECIPE.crop,
    scaleMin: c.scaleMin ?? RECIPE.cropScale[0],
    scaleMax: c.scaleMax ?? RECIPE.cropScale[1],
    mirror: c.mirror ?? true,
    batchSize: c.batchSize ?? RECIPE.batchSize,
    iterSize: c.iterSize ?? RECIPE.iterSize,
    maxIter: c.maxIter ?? RECIPE.maxIter,
    optimizer: c.optimizer ?? 'sgd',
    lr: c.lr ?? RECIPE.lr,
    lrPower: c.lrPower ?? RECIPE.lrPower,
    warmupIter: c.warmupIter ?? 0,
    momentum: c.momentum ?? RECIPE.momentum,
    weightDecay: c.weightDecay ?? RECIPE.weightDecay,
    backboneLrMult: c.backboneLrMult ?? RECIPE.backboneLrMult,
    headLrMult: c.headLrMult ?? RECIPE.headLrMult,
    biasLrFactor: c.biasLrFactor ?? RECIPE.biasLrFactor,
    biasDecay: c.biasDecay ?? false,
    bnDecay: c.bnDecay ?? false,
    freezeBN: c.freezeBN ?? false,
    classWeights: c.classWeights ?? 'none',
    msc: c.msc ?? model.spec.variant === 'v2',
    lossAt: c.lossAt ?? 'auto',
    auxWeight: c.auxWeight ?? 0.5,
    seed: c.seed ?? 1,
    checkpointDir: c.checkpointDir || undefined,
    checkpointEvery: c.checkpointEvery ?? RECIPE.checkpointEvery,
    keep: c.keep ?? RECIPE.keep,
    publish: c.publish ?? true,
    evalEvery: c.evalEvery ?? RECIPE.evalEvery,
    evalLimit: c.evalLimit ?? 0,
    evalRule: c.evalRule ?? 'voc',
    progressEvery: c.progressEvery ?? RECIPE.progressEvery,
    prefetch: c.prefetch ?? 4,
    dataWorker: c.dataWorker ?? true,
  };
  checkData(out.train, 'training data');
  check(out.train !== undefined, 'training data is missing');
  checkData(out.val, 'validation data');
  const ints: [keyof TrainConfig, number][] = [
    ['cropSize', 8], ['batchSize', 1], ['iterSize', 1], ['maxIter', 1], ['checkpointEvery', 0], ['keep', 1],
    ['evalEvery', 0], ['evalLimit', 0], ['progressEvery', 1], ['prefetch', 1], ['warmupIter', 0],
  ];
  for (const [k, min] of ints) {
    const v = out[k];
    check(Number.isInteger(v) && (v as number) >= min, `${k} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  check(out.cropSize <= 4096, `cropSize must be at most 4096, got ${out.cropSize}`);
  const nonNeg: (keyof TrainConfig)[] = ['lr', 'lrPower', 'weightDecay', 'backboneLrMult', 'headLrMult', 'biasLrFactor', 'auxWeight'];
  for (const k of nonNeg) check(isNum(out[k]) && (out[k] as number) >= 0, `${k} must be a number >= 0, got ${JSON.stringify(out[k])}`);
  check(isNum(out.momentum) && out.momentum >= 0 && out.momentum < 1, `momentum must be in [0, 1), got ${out.momentum}`);
  check(isNum(out.scaleMin) && isNum(out.scaleMax) && out.scaleMin > 0 && out.scaleMin <= out.scaleMax && out.scaleMax <= 8,
    `scale range must satisfy 0 < scaleMin <= scaleMax <= 8, got ${out.scaleMin}..${out.scaleMax}`);
  check(isNum(out.seed), `seed must be a number, got ${out.seed}`);
  check(out.optimizer === 'sgd' || out.optimizer === 'adam', `optimizer must be sgd or adam, got ${JSON.stringify(out.optimizer)}`);
  const cw = out.classWeights;
  if (Array.isArray(cw)) {
    check(cw.length === model.spec.classes && cw.every((v) => isNum(v) && v >= 0), `classWeights must be ${model.spec.classes} numbers >= 0, got ${JSON.stringify(cw)}`);
  } else check(cw === 'none' || cw === 'sqrt-inverse', `classWeights must be none, sqrt-inverse or a list of numbers, got ${JSON.stringify(cw)}`);
  check(['auto', 'logits', 'labels'].includes(out.lossAt), `lossAt must be auto, logits or labels, got ${out.lossAt}`);
  check(['voc', 'present'].includes(out.evalRule), `evalRule must be voc or present, got ${out.evalRule}`);
  return out;
}
