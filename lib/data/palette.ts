/**
 * Class names and colours: the VOC colour map and the presets the model config, the
 * renderer and the evaluator share (VOC-21, Cityscapes-19, ADE20K-150).
 */

export type RGB = [number, number, number];

export interface ClassPreset {
  /** Class names by class id. */
  names: string[];
  /** Display colour by class id (same length as names). */
  colors: RGB[];
}

/**
 * The PASCAL VOC colour map: the bits of the index are spread over R, G and B from the
 * most significant bit down (bit 0 -> R7, bit 1 -> G7, bit 2 -> B7, bit 3 -> R6, ...).
 * Index 255 gives (224, 224, 192), the colour of void boundaries in VOC masks.
 */
export function vocPalette(n = 256): RGB[] {
  if (!Number.isInteger(n) || n < 0 || n > 1 << 24) throw new Error(`vocPalette: n must be an integer in 0..2^24, got ${n}`);
  const out: RGB[] = new Array(n);
  for (let i = 0; i < n; i++) {
    let r = 0;
    let g = 0;
    let b = 0;
    let c = i;
    for (let j = 7; c > 0 && j >= 0; j--) {
      r |= (c & 1) << j;
      g |= ((c >> 1) & 1) << j;
      b |= ((c >> 2) & 1) << j;
      c >>= 3;
    }
    out[i] = [r, g, b];
  }
  return out;
}

/**
 * A palette of n well-separated colours for label sets without an official one: hues step
 * by the golden angle, saturation and value cycle so that neighbours in hue still differ.
 */
export function generatedPalette(n: number): RGB[] {
  const out: RGB[] = [];
  for (let i = 0; i < n; i++) {
    const h = (i * 0.618033988749895) % 1;
    const s = [0.85, 0.6, 0.95][i % 3];
    const v = [0.95, 0.75, 0.6][Math.floor(i / 3) % 3];
    out.push(hsvToRgb(h, s, v));
  }
  return out;
}

function hsvToRgb(h: number, s: number, v: number): RGB {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

export const VOC21_NAMES: readonly string[] = [
  'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
  'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
];

/** Cityscapes' 19 evaluation classes (train ids 0..18) with the dataset's official colours. */
const CITYSCAPES19: readonly [string, RGB][] = [
  ['road', [128, 64, 128]], ['sidewalk', [244, 35, 232]], ['building', [70, 70, 70]], ['wall', [102, 102, 156]],
  ['fence', [190, 153, 153]], ['pole', [153, 153, 153]], ['traffic light', [250, 170, 30]], ['traffic sign', [220, 220, 0]],
  ['vegetation', [107, 142, 35]], ['terrain', [152, 251, 152]], ['sky', [70, 130, 180]], ['person', [220, 20, 60]],
  ['rider', [255, 0, 0]], ['car', [0, 0, 142]], ['truck', [0, 0, 70]], ['bus', [0, 60, 100]], ['train', [0, 80, 100]],
  ['motorcycle', [0, 0, 230]], ['bicycle', [119, 11, 32]],
];
export const CITYSCAPES19_NAMES: readonly string[] = CITYSCAPES19.map(([n]) => n);

/** ADE20K SceneParsing's 150 classes (ids 0..149 after the "other" label 0 is made void). */
export const ADE20K150_NAMES: readonly string[] = [
  'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass',
  'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair',
  'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field',
  'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion',
  'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace',
  'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway',
  'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench',
  'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel',
  'bus', 'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver',
  'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet',
  'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool',
  'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball',
  'food', 'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher',
  'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan',
  'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
];

export type ClassPresetName = 'voc21' | 'cityscapes19' | 'ade20k150';

export const CLASS_PRESET_NAMES: readonly ClassPresetName[] = ['voc21', 'cityscapes19', 'ade20k150'];

function freeze(p: ClassPreset): Readonly<ClassPreset> {
  p.colors.forEach((c) => Object.freeze(c));
  Object.freeze(p.names);
  Object.freeze(p.colors);
  return Object.freeze(p);
}

/** Frozen: copy (e.g. `[...preset.names]`) before changing. */
export const CLASS_PRESETS: Readonly<Record<ClassPresetName, Readonly<ClassPreset>>> = Object.freeze({
  voc21: freeze({ names: [...VOC21_NAMES], colors: vocPalette(21) }),
  cityscapes19: freeze({ names: [...CITYSCAPES19_NAMES], colors: CITYSCAPES19.map(([, c]) => [...c] as RGB) }),
  ade20k150: freeze({ names: [...ADE20K150_NAMES], colors: generatedPalette(150) }),
});

export function isClassPresetName(v: unknown): v is ClassPresetName {
  return typeof v === 'string' && (CLASS_PRESET_NAMES as readonly string[]).includes(v);
}

/** The preset by name; a clear error on an unknown one. */
export function classPreset(name: string): Readonly<ClassPreset> {
  if (!isClassPresetName(name)) throw new Error(`unknown class preset "${name}": expected one of ${CLASS_PRESET_NAMES.join(', ')}`);
  return CLASS_PRESETS[name];
}

/**
 * Names for `classes` class ids: the given names where long enough, else the preset's,
 * padded with "class <id>" (a model with more classes than its label set still gets rows).
 */
export function classNames(classes: number, names?: readonly string[]): string[] {
  const src = names ?? VOC21_NAMES;
  const out: string[] = [];
  for (let i = 0; i < classes; i++) out.push(src[i] ?? `class ${i}`);
  return out;
}

/**
 * Colours for `classes` class ids: the given colours first, then the VOC colour map for
 * ids beyond them (the renderer's fallback for any number of classes up to 256).
 */
export function classColors(classes: number, colors?: readonly RGB[]): RGB[] {
  const voc = vocPalette(Math.max(classes, 0));
  const out: RGB[] = [];
  for (let i = 0; i < classes; i++) out.push(colors?.[i] ? [...colors[i]] as RGB : voc[i]);
  return out;
}

/** Colours as a flat RGB lookup table of 256 entries (id -> 3 bytes); unset ids take the VOC colour map. */
export function paletteTable(colors: readonly RGB[] = CLASS_PRESETS.voc21.colors): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  const voc = vocPalette(256);
  for (let i = 0; i < 256; i++) {
    const c = colors[i] ?? voc[i];
    lut[i * 3] = c[0];
    lut[i * 3 + 1] = c[1];
    lut[i * 3 + 2] = c[2];
  }
  return lut;
}
