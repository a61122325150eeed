/**
 * The catalogue of published DeepLab checkpoints (catalogue.json): where each one is, how to check
 * it, which of our networks it fits, which weight layout an importer must map, the input
 * normalisation it was trained with and the score its publisher reports.
 *
 * This module only describes; download.ts fetches, the importers (torch/, layouts/) convert.
 * It deliberately imports nothing that loads tfjs (types only from the model modules), so the
 * editor and the main thread can list the catalogue without pulling a backend in.
 */
import * as fs from 'fs';
import type { BackboneName, ModelSpec, Variant } from '../models/deeplab';
import type { Preprocessing } from '../models/preprocess';
import { CLASS_PRESETS } from '../data/palette';
import catalogueJson from './catalogue.json';

export type WeightFormat = 'pytorch' | 'tfjs-graph' | 'onnx' | 'ours';
export type WeightLayout =
  | 'torchvision' | 'torchvision-backbone' | 'kazuto1011' | 'jfzhang95' | 'deeplab-resnet' | 'vgg-largefov' | 'tfjs-deeplab';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['pytorch', 'tfjs-graph', 'onnx', 'ours'];
export const WEIGHT_LAYOUTS: readonly WeightLayout[] = [
  'torchvision', 'torchvision-backbone', 'kazuto1011', 'jfzhang95', 'deeplab-resnet', 'vgg-largefov', 'tfjs-deeplab',
];
// The names preprocess.ts knows; listed here so that reading the catalogue does not load tfjs
// (the test checks this list against PREPROCESSINGS).
export const CATALOGUE_PREPROCESSINGS: readonly Preprocessing[] = ['caffe-bgr', 'imagenet', 'tanh'];

/** The part of our ModelSpec a checkpoint fixes; normalizeSpec fills in the rest. */
export type PublishedSpec = Pick<ModelSpec, 'variant' | 'backbone' | 'classes' | 'outputStride'> & Partial<Pick<ModelSpec, 'layout' | 'aux'>>;

export interface PublishedScore {
  metric: 'mIoU' | 'top-1 accuracy';
  /** Percent, as published. */
  value: number;
  on: string;
  note?: string;
}

export interface ManualDownload {
  /** The publisher's page that links the file. */
  page: string;
  /** The direct link on that page, when there is one (a browser may still be needed). */
  download?: string;
  instructions: string;
}

export interface PublishedEntry {
  id: string;
  title: string;
  /** Direct download (https). Absent for manual entries. */
  url?: string;
  /** Other published locations of the same file, tried in order after url. */
  mirrors?: string[];
  /** Path of the raw file under the cache directory (the URL's file name unless given). */
  fileName: string;
  sha256?: string;
  /** Leading hex digits of the sha256 (torch hub's convention: the digits after the last '-' in the file name). */
  hashPrefix?: string;
  /** Why no checksum can be given (none published). */
  unverified?: string;
  /** Exact size in bytes, when published. */
  size?: number;
  /** The publisher's rounded size in MB (informative only). */
  sizeMB?: number;
  format: WeightFormat;
  layout: WeightLayout;
  /** Only the backbone is published; the DeepLab head starts untrained. */
  backboneOnly?: boolean;
  spec: PublishedSpec;
  dataset: string;
  classNames: string[];
  preprocessing: Preprocessing;
  score: PublishedScore;
  extraScores?: PublishedScore[];
  license: string;
  source: string;
  manual?: ManualDownload;
  notes?: string;
}

const VARIANTS: readonly Variant[] = ['v1', 'v2', 'v3', 'v3plus'];
const BACKBONES: readonly BackboneName[] = ['vgg16', 'resnet50', 'resnet101', 'mobilenetv2', 'xception65'];
const ID_RE = /^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*$/;

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Raw, key: string, where: string, optional = false): string | undefined {
  const v = o[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw new Error(`${where}: "${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/** The package's entries are https; a site's own catalogue may name a mirror on its local network over http. */
function httpsUrl(v: string, where: string, allowHttp = false): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new Error(`${where}: "${v}" is not a URL`);
  }
  if (u.protocol !== 'https:' && !(allowHttp && u.protocol === 'http:')) throw new Error(`${where}: "${v}" must be https`);
  return v;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], what: string, where: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new Error(`${where}: ${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function score(v: unknown, where: string): PublishedScore {
  if (!isObject(v)) throw new Error(`${where}: a score must be an object`);
  const metric = oneOf(v.metric, ['mIoU', 'top-1 accuracy'] as const, 'score.metric', where);
  if (typeof v.value !== 'number' || !(v.value > 0 && v.value <= 100)) throw new Error(`${where}: score.value must be a percentage, got ${JSON.stringify(v.value)}`);
  return { metric, value: v.value, on: str(v, 'on', where)!, note: str(v, 'note', where, true) };
}

/** Expands "@set" items (palette presets, then the JSON's classSets) into their names. */
function expandClassNames(v: unknown, sets: Record<string, readonly string[]>, where: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw new Error(`${where}: classNames must be a non-empty array`);
  const out: string[] = [];
  for (const item of v) {
    if (typeof item !== 'string' || item === '') throw new Error(`${where}: class names must be non-empty strings`);
    if (!item.startsWith('@')) {
      out.push(item);
      continue;
    }
    const set = sets[item.slice(1)];
    if (!set) throw new Error(`${where}: unknown class set "${item}" (known: ${Object.keys(sets).map((k) => '@' + k).join(', ')})`);
    out.push(...set);
  }
  return out;
}

function spec(v: unknown, where: string): PublishedSpec {
  if (!isObject(v)) throw new Error(`${where}: spec must be an object`);
  const s: PublishedSpec = {
    variant: oneOf(v.variant, VARIANTS, 'spec.variant', where),
    backbone: oneOf(v.backbone, BACKBONES, 'spec.backbone', where),
    classes: v.classes as number,
    outputStride: v.outputStride as 8 | 16,
  };
  if (!Number.isInteger(s.classes) || s.classes < 1 || s.classes > 255) throw new Error(`${where}: spec.classes must be an integer in 1..255`);
  if (s.outputStride !== 8 && s.outputStride !== 16) throw new Error(`${where}: spec.outputStride must be 8 or 16`);
  if (v.layout !== undefined) s.layout = oneOf(v.layout, ['paper', 'torchvision', 'jfzhang95'] as const, 'spec.layout', where);
  if (v.aux !== undefined) {
    if (typeof v.aux !== 'boolean') throw new Error(`${where}: spec.aux must be a boolean`);
    s.aux = v.aux;
  }
  return s;
}

/** The file name a URL gives (its last path segment, query stripped). */
export function fileNameFromUrl(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  if (!name) throw new Error(`the URL ${url} names no file`);
  return name;
}

/** Checks one raw catalogue entry and returns it typed (class names expanded, file name filled in). */
export function validateEntry(raw: unknown, sets: Record<string, readonly string[]> = classSets(), opts: { allowHttp?: boolean } = {}): PublishedEntry {
  if (!isObject(raw)) throw new Error('catalogue: every entry must be an object');
  const id = str(raw, 'id', 'catalogue entry')!;
  const where = `catalogue entry "${id}"`;
  if (!ID_RE.test(id)) throw new Error(`${where}: ids are "<publisher>/<name>" in lower case`);
  const url = raw.url === undefined ? undefined : httpsUrl(str(raw, 'url', where)!, where, opts.allowHttp);
  const mirrors = raw.mirrors === undefined ? undefined : (Array.isArray(raw.mirrors) ? raw.mirrors : [raw.mirrors]).map((m) => httpsUrl(String(m), where, opts.allowHttp));
  let manual: ManualDownload | undefined;
  if (raw.manual !== undefined) {
    if (!isObject(raw.manual)) throw new Error(`${where}: manual must be an object`);
    manual = {
      page: httpsUrl(str(raw.manual, 'page', where)!, where, opts.allowHttp),
      download: raw.manual.download === undefined ? undefined : httpsUrl(str(raw.manual, 'download', where)!, where, opts.allowHttp),
      instructions: str(raw.manual, 'instructions', where)!,
    };
  }
  if ((url === undefined) === (manual === undefined)) throw new Error(`${where}: give either a url or manual download instructions`);
  const sha256 = str(raw, 'sha256', where, true)?.toLowerCase();
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`${where}: sha256 must be 64 hex digits`);
  const hashPrefix = str(raw, 'hashPrefix', where, true)?.toLowerCase();
  if (hashPrefix !== undefined && !/^[0-9a-f]{6,63}$/.test(hashPrefix)) throw new Error(`${where}: hashPrefix must be 6 to 63 hex digits`);
  const unverified = str(raw, 'unverified', where, true);
  if (url && !sha256 && !hashPrefix && !unverified) throw new Error(`${where}: a downloadable entry needs sha256, hashPrefix, or the reason none is published ("unverified")`);
  if (raw.size !== undefined && !(Number.isInteger(raw.size) && (raw.size as number) > 0)) throw new Error(`${where}: size must be a byte count`);
  const fileName = str(raw, 'fileName', where, true) ?? (url ? fileNameFromUrl(url) : undefined);
  if (!fileName) throw new Error(`${where}: a manual entry needs a fileName`);
  if (fileName.split('/').some((p) => p === '' || p === '.' || p === '..') || fileName.includes('\\')) {
    throw new Error(`${where}: fileName must be a relative path inside the cache directory`);
  }
  const s = spec(raw.spec, where);
  const classNames = expandClassNames(raw.classNames, sets, where);
  if (classNames.length !== s.classes) throw new Error(`${where}: ${classNames.length} class names for ${s.classes} classes`);
  return {
    id,
    title: str(raw, 'title', where)!,
    url,
    mirrors,
    fileName,
    sha256,
    hashPrefix,
    unverified,
    size: raw.size as number | undefined,
    sizeMB: typeof raw.sizeMB === 'number' ? raw.sizeMB : undefined,
    format: oneOf(raw.format, WEIGHT_FORMATS, 'format', where),
    layout: oneOf(raw.layout, WEIGHT_LAYOUTS, 'layout', where),
    backboneOnly: raw.backboneOnly === true ? true : undefined,
    spec: s,
    dataset: str(raw, 'dataset', where)!,
    classNames,
    preprocessing: oneOf(raw.preprocessing, CATALOGUE_PREPROCESSINGS, 'preprocessing', where),
    score: score(raw.score, where),
    extraScores: raw.extraScores === undefined ? undefined : (raw.extraScores as unknown[]).map((x) => score(x, where)),
    license: str(raw, 'license', where)!,
    source: httpsUrl(str(raw, 'source', where)!, where, opts.allowHttp),
    manual,
    notes: str(raw, 'notes', where, true),
  };
}

function classSets(): Record<string, readonly string[]> {
  const sets: Record<string, readonly string[]> = {};
  for (const [name, preset] of Object.entries(CLASS_PRESETS)) sets[name] = preset.names;
  const extra = (catalogueJson as { classSets?: Record<string, string[]> }).classSets ?? {};
  for (const [name, names] of Object.entries(extra)) sets[name] = names;
  return sets;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

let cache: readonly PublishedEntry[] | undefined;

/** Reads the catalogue again on next use (after DEEPLAB_CATALOGUE or the site's file changed). */
export function reloadPublished(): void {
  cache = undefined;
}

/**
 * A site's own entries (a mirror on the local network, checkpoints of its own): a JSON file of the
 * same shape named by DEEPLAB_CATALOGUE, added after the package's entries.
 */
function siteEntries(): { raw: unknown[]; where: string } {
  const file = process.env.DEEPLAB_CATALOGUE;
  if (!file) return { raw: [], where: '' };
  let json: { entries?: unknown };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries?: unknown };
  } catch (err) {
    throw new Error(`DEEPLAB_CATALOGUE=${file}: ${(err as Error).message}`);
  }
  if (!Array.isArray(json.entries)) throw new Error(`DEEPLAB_CATALOGUE=${file}: "entries" must be an array`);
  return { raw: json.entries, where: file };
}

/** Every published checkpoint, validated once (a malformed catalogue throws here, naming the entry). */
export function listPublished(): readonly PublishedEntry[] {
  if (cache) return cache;
  const raw: unknown = (catalogueJson as { entries?: unknown }).entries;
  if (!Array.isArray(raw)) throw new Error('catalogue.json: "entries" must be an array');
  const sets = classSets();
  const site = siteEntries();
  const entries = raw.map((e) => validateEntry(e, sets));
  entries.push(...site.raw.map((e) => validateEntry(e, sets, { allowHttp: true })));
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.id)) throw new Error(`catalogue${site.where ? ` (with ${site.where})` : '.json'}: duplicate id "${e.id}"`);
    seen.add(e.id);
  }
  cache = deepFreeze(entries);
  return cache;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** The entry with this id; an unknown id throws, naming the closest ids. */
export function findPublished(id: string): PublishedEntry {
  const all = listPublished();
  const hit = all.find((e) => e.id === id);
  if (hit) return hit;
  const q = String(id).toLowerCase();
  const close = all
    .map((e) => ({ id: e.id, d: e.id.includes(q) || (q.length > 2 && q.includes(e.id.split('/')[1])) ? 0 : editDistance(q, e.id) }))
    .filter((c) => c.d <= Math.max(3, Math.floor(q.length / 3)))
    .sort((a, b) => a.d - b.d)
    .slice(0, 5)
    .map((c) => c.id);
  const hint = close.length ? `did you mean ${close.join(', ')}?` : `known ids: ${all.map((e) => e.id).join(', ')}`;
  throw new Error(`unknown published weights "${id}": ${hint}`);
}

/**
 * Entries matching every word of `text` (case-insensitive) in their id, title, dataset, layout,
 * format, variant, backbone or class names; an empty text lists everything.
 */
export function searchPublished(text: string): PublishedEntry[] {
  const words = String(text ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  return listPublished().filter((e) => {
    const hay = [e.id, e.title, e.dataset, e.layout, e.format, e.spec.variant, e.spec.backbone, e.preprocessing, ...e.classNames]
      .join(' ')
      .toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}
