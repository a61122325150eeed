/**
 * Training presets: the published DeepLab recipes for real data on big machines, and the recipe
 * tuned here for learning a small new data set on a CPU (bench/recipe.ts; the learning curves are
 * in the README). Each is a partial TrainConfigInput; the train node applies one as its defaults.
 */
import { ModelConfig } from '../models/config';
import { listPublished } from '../weights/catalogue';
import { RECIPE, TrainConfigInput } from './config';

export type PresetName = 'small-data' | 'v2' | 'v3plus';

/**
 * DeepLab v2 (Chen et al. 2017; kazuto1011's deeplab-pytorch): SGD momentum 0.9, lr 2.5e-4, poly 0.9,
 * batch 10 (here 2 x iter size 5: see RECIPE), 20k iterations, crop 321, frozen BN, fine-tuned from
 * ImageNet weights.
 */
export const V2_PUBLISHED = Object.freeze({
  optimizer: 'sgd', lr: RECIPE.lr, lrPower: RECIPE.lrPower, warmupIter: 0, momentum: RECIPE.momentum, weightDecay: RECIPE.weightDecay,
  batchSize: RECIPE.batchSize, iterSize: RECIPE.iterSize, maxIter: RECIPE.maxIter, cropSize: RECIPE.crop,
  scaleMin: RECIPE.cropScale[0], scaleMax: RECIPE.cropScale[1],
  backboneLrMult: RECIPE.backboneLrMult, headLrMult: RECIPE.headLrMult, biasLrFactor: RECIPE.biasLrFactor, classWeights: 'none',
  evalEvery: RECIPE.evalEvery, checkpointEvery: RECIPE.checkpointEvery, progressEvery: RECIPE.progressEvery,
} as const satisfies Partial<TrainConfigInput>);

/**
 * DeepLab v3+ (Chen et al. 2018): SGD momentum 0.9, lr 0.007, poly 0.9, batch 16 with BN trained,
 * crop 513 on VOC, 30k iterations at output stride 16, fine-tuned from ImageNet weights. Batch 16
 * of 513 does not fit the WebAssembly heap: 2 x iter size 8 here (gradients summed; BN statistics
 * come from 2 images, so a GPU run should raise batchSize and lower iterSize).
 */
export const V3PLUS_PUBLISHED = Object.freeze({
  optimizer: 'sgd', lr: 0.007, lrPower: 0.9, warmupIter: 0, momentum: 0.9, weightDecay: 4e-5,
  batchSize: 2, iterSize: 8, maxIter: 30000, cropSize: 513, scaleMin: 0.5, scaleMax: 2,
  backboneLrMult: 1, headLrMult: 1, biasLrFactor: 1, classWeights: 'none',
  evalEvery: 1000, checkpointEvery: 1000, progressEvery: 10,
} as const satisfies Partial<TrainConfigInput>);

/**
 * A small new data set on a CPU, trained from scratch: Adam with a short warm-up, BN trained on
 * batches of 4, crops of half the image side, rare classes lifted by 1/sqrt(frequency) weights.
 * Provisional: on the hard-shapes set (random colours: only shape tells the class) no recipe found
 * reaches held-out mIoU 0.6 in a CPU budget. A PyTorch search on the same pictures (bench/
 * torch_recipe.py; README "Learning curves on hard-shapes") over optimiser, learning rate, batch,
 * crop, class weights, BN mode, width, a plain CNN and easier variants of the set stays at 0.25-0.38
 * after 100-600 iterations and 0.37-0.41 after 1500-3000, where the colour-coded demo set reaches 0.87 in 100.
 * `width` is the MobileNetV2 width the train node's default network takes with it.
 */
export const SMALL_DATA = Object.freeze({
  optimizer: 'adam', lr: 3e-3, lrPower: 0.9, warmupIter: 10, momentum: 0.9, weightDecay: 1e-4,
  batchSize: 4, iterSize: 1, maxIter: 240, cropSize: 81, scaleMin: 0.75, scaleMax: 1.25,
  backboneLrMult: 1, headLrMult: 1, biasLrFactor: 1, classWeights: 'sqrt-inverse',
  evalEvery: 50, checkpointEvery: 100, progressEvery: 5,
  width: 0.25,
} as const);

export const PRESETS: Readonly<Record<PresetName, Partial<TrainConfigInput>>> = Object.freeze({ 'small-data': SMALL_DATA, v2: V2_PUBLISHED, v3plus: V3PLUS_PUBLISHED });

/** The published recipes fine-tune from ImageNet; the small-data recipe trains from scratch. */
export function isRealDataPreset(name: PresetName): boolean {
  return name === 'v2' || name === 'v3plus';
}

/**
 * The catalogue's ImageNet backbone for a model (torchvision's ResNet-50/101, MobileNetV2), when
 * the network is the full-width one those weights fit and its preprocessing is theirs.
 */
export function imagenetBackboneFor(model: ModelConfig): string | undefined {
  if (model.spec.width !== 1) return undefined;
  const hit = listPublished().find((e) => e.backboneOnly && e.spec.backbone === model.spec.backbone && e.preprocessing === model.preprocessing);
  return hit?.id;
}
