/**
 * Data sets on disk: the PASCAL VOC layout or two folders of images and masks matched by
 * base name; seeded shuffling; paths confined to a root folder. (The pacing that keeps a slow
 * flow from being flooded is lib/runtime/pacer.)
 *
 * VOC layout (under the data set folder):
 *   JPEGImages/<id>.jpg
 *   SegmentationClass/<id>.png or SegmentationClassAug/<id>.png
 *   ImageSets/Segmentation/<split>.txt   (one id per line)
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import { ContractError, LabelMap } from '../contract';
import { decodeLabelImage } from './labels';
import { Rng } from '../runtime/random';

/** A path outside the configured root (by '..', an absolute path or a symbolic link). */
export class PathSafetyError extends ContractError {
  constructor(message: string) {
    super(message);
    this.name = 'PathSafetyError';
  }
}

const isInside = (root: string, p: string): boolean => {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Resolves `p` (relative to root, or absolute) and checks that it lies under `root`, both as
 * written and after following symbolic links. The target must exist. Returns the real path.
 */
export async function resolveUnder(root: string, p: string, what = 'path'): Promise<string> {
  if (typeof p !== 'string') throw new PathSafetyError(`${what} must be a string, got ${typeof p}`);
  if (p.includes('\0')) throw new PathSafetyError(`${what} contains a NUL character`);
  const rootAbs = path.resolve(root);
  let realRoot: string;
  try {
    realRoot = await fsp.realpath(rootAbs);
  } catch {
    throw new ContractError(`root folder "${root}" does not exist`);
  }
  const outside = () => new PathSafetyError(`${what} "${p}" is outside the allowed root "${root}"`);
  // An absolute path must name a place under the root (as written or after its own links).
  let rel = p;
  if (path.isAbsolute(p)) {
    if (isInside(rootAbs, p)) rel = path.relative(rootAbs, p);
    else if (isInside(realRoot, p)) rel = path.relative(realRoot, p);
    else throw outside();
  }
  const abs = path.resolve(realRoot, rel);
  if (!isInside(realRoot, abs)) throw outside();
  let real: string;
  try {
    real = await fsp.realpath(abs);
  } catch {
    throw new ContractError(`${what} "${p}" does not exist under "${root}"`);
  }
  if (!isInside(realRoot, real)) throw new PathSafetyError(`${what} "${p}" leads outside the allowed root "${root}" through a symbolic link`);
  return real;
}

/** Reads a file only after checking it lies under root. */
export async function readFileUnder(root: string, p: string, what = 'file'): Promise<Buffer> {
  return fsp.readFile(await resolveUnder(root, p, what));
}

export interface Sample {
  id: string;
  /** Paths relative to the data set folder. */
  image: string;
  mask?: string;
}

export interface DatasetListing {
  layout: 'voc' | 'folders';
  /** The data set folder (real path, under the root). */
  dir: string;
  samples: Sample[];
  /** Ids without a mask (listed, not in `samples` unless kept). */
  missingMasks: string[];
  /** Ids of the split whose image is missing (VOC layout): always left out. */
  missingImages: string[];
}

export interface ListOptions {
  layout?: 'auto' | 'voc' | 'folders';
  /** VOC: the split file name without .txt (default 'val'). */
  split?: string;
  /** VOC: 'auto' takes SegmentationClass where it exists, else SegmentationClassAug. */
  maskSet?: 'auto' | 'SegmentationClass' | 'SegmentationClassAug';
  /** Folders layout: the image and mask folders, relative to the data set folder. */
  imagesDir?: string;
  masksDir?: string;
  /** Keep samples without a mask in `samples` (their `mask` undefined). */
  keepUnmasked?: boolean;
}

const IMAGE_EXT = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'];
const MASK_EXT = ['.png', '.bmp', '.tif', '.tiff', '.pgm'];

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Files of a folder by base name (first extension in `exts` order wins on duplicates). */
async function filesByBase(dir: string, exts: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  const ranked = entries
    .filter((e) => !e.isDirectory() && exts.includes(path.extname(e.name).toLowerCase()))
    .sort((a, b) => exts.indexOf(path.extname(a.name).toLowerCase()) - exts.indexOf(path.extname(b.name).toLowerCase()));
  for (const e of ranked) {
    const base = e.name.slice(0, e.name.length - path.extname(e.name).length);
    if (!out.has(base)) out.set(base, e.name);
  }
  return out;
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Lists the samples of a data set folder under root. */
export async function listDataset(root: string, dir: string, opts: ListOptions = {}): Promise<DatasetListing> {
  const base = await resolveUnder(root, dir || '.', 'data set folder');
  if (!(await isDir(base))) throw new ContractError(`data set folder "${dir}" is not a folder`);
  let layout = opts.layout ?? 'auto';
  if (layout === 'auto') layout = (await isDir(path.join(base, 'JPEGImages'))) ? 'voc' : 'folders';
  const missingMasks: string[] = [];
  const missingImages: string[] = [];
  const samples: Sample[] = [];

  if (layout === 'voc') {
    const split = opts.split || 'val';
    if (!/^[\w.-]+$/.test(split)) throw new ContractError(`split name "${split}" must be a plain file name (letters, digits, _ . -)`);
    let maskSet = opts.maskSet ?? 'auto';
    if (maskSet === 'auto') maskSet = (await isDir(path.join(base, 'SegmentationClass'))) ? 'SegmentationClass' : 'SegmentationClassAug';
    const splitFile = path.join('ImageSets', 'Segmentation', `${split}.txt`);
    let text: string;
    try {
      text = (await readFileUnder(base, splitFile, 'split file')).toString('utf8');
    } catch (err) {
      if (err instanceof PathSafetyError) throw err;
      throw new ContractError(`VOC split file ${splitFile} not found in "${dir}" (${(err as Error).message})`);
    }
    const ids = [...new Set(text.split(/\r?\n/).map((l) => l.trim().split(/\s+/)[0]).filter((l) => l.length > 0))];
    const images = await filesByBase(path.join(base, 'JPEGImages'), IMAGE_EXT);
    const masks = (await isDir(path.join(base, maskSet))) ? await filesByBase(path.join(base, maskSet), MASK_EXT) : new Map<string, string>();
    for (const id of ids) {
      if (!/^[\w.-]+$/.test(id) || id === '.' || id === '..') throw new ContractError(`split ${split}.txt holds an id that is not a plain file name: ${JSON.stringify(id)}`);
      const img = images.get(id);
      if (!img) {
        missingImages.push(id);
        continue;
      }
      const m = masks.get(id);
      if (!m) missingMasks.push(id);
      if (m || opts.keepUnmasked) samples.push({ id, image: path.join('JPEGImages', img), mask: m ? path.join(maskSet, m) : undefined });
    }
  } else {
    const imagesDir = opts.imagesDir || 'images';
    const masksDir = opts.masksDir || 'masks';
    const imgAbs = await resolveUnder(base, imagesDir, 'images folder');
    const maskAbs = await resolveUnder(base, masksDir, 'masks folder');
    const images = await filesByBase(imgAbs, IMAGE_EXT);
    const masks = await filesByBase(maskAbs, MASK_EXT);
    const relImg = path.relative(base, imgAbs);
    const relMask = path.relative(base, maskAbs);
    for (const id of [...images.keys()].sort(byId)) {
      const m = masks.get(id);
      if (!m) missingMasks.push(id);
      if (m || opts.keepUnmasked) samples.push({ id, image: path.join(relImg, images.get(id)!), mask: m ? path.join(relMask, m) : undefined });
    }
  }
  return { layout, dir: base, samples, missingMasks, missingImages };
}

/**
 * A shuffled copy in the dataset node's seeded order. The seed is mixed with a constant (so seed
 * 0 is not mulberry32's zero state), which keeps the orders every flow with a seed has had.
 */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  return new Rng((Math.floor(seed) >>> 0) ^ 0x9e3779b9).shuffle(items.slice());
}

/** Order of a run: optional seeded shuffle, then the first `limit` (0 = all). */
export function runOrder<T>(items: readonly T[], opts: { shuffle?: boolean; seed?: number; limit?: number } = {}): T[] {
  const order = opts.shuffle ? seededShuffle(items, opts.seed ?? 0) : items.slice();
  const limit = opts.limit ?? 0;
  return limit > 0 ? order.slice(0, limit) : order;
}

export interface LoadedSample {
  id: string;
  image: Buffer;
  /** The mask file bytes, or the decoded LabelMap when asked. */
  groundTruth?: Buffer | LabelMap;
}

/** Reads one sample's files (checked under root) and optionally decodes the mask. */
export async function loadSample(root: string, listing: DatasetListing, s: Sample, decodeMask = false): Promise<LoadedSample> {
  const image = await readFileUnder(root, path.join(listing.dir, s.image), `image of ${s.id}`);
  if (!s.mask) return { id: s.id, image };
  const mask = await readFileUnder(root, path.join(listing.dir, s.mask), `mask of ${s.id}`);
  return { id: s.id, image, groundTruth: decodeMask ? await decodeLabelImage(mask) : mask };
}
