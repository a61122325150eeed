/**
 * Our saved format: a directory (or URL prefix) holding
 *   deeplab.json  {format, version, spec, preprocessing, classNames, weights: [{name, shape, offset}]}
 *   weights.bin   every tensor as little-endian float32, back to back.
 * The spec rebuilds the network; weights are matched by name and shape.
 * Files are written atomically (temporary file, then rename), weights before the manifest,
 * so a reader never sees a manifest pointing at a half-written weights file.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { DeepLab, ModelSpec } from '../models/deeplab';
import { Preprocessing } from '../models/preprocess';
import { fetchBytes, HttpTimeouts } from './download';

export const FORMAT_NAME = 'node-red-deeplab';
export const FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'deeplab.json';
export const WEIGHTS_FILE = 'weights.bin';

export interface WeightEntry {
  name: string;
  shape: number[];
  /** Offset in float32 elements into weights.bin. */
  offset: number;
}

export interface Manifest {
  format: typeof FORMAT_NAME;
  version: number;
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames?: string[];
  weights: WeightEntry[];
  /** Free-form provenance: training iteration, mIoU, date. */
  meta?: Record<string, unknown>;
}

export interface SavedWeights {
  manifest: Manifest;
  data: Float32Array;
}

/** Reads every parameter of the model into one buffer and a manifest. */
export async function serialize(model: DeepLab, preprocessing: Preprocessing, extra: Pick<Manifest, 'classNames' | 'meta'> = {}): Promise<SavedWeights> {
  const entries: WeightEntry[] = [];
  let total = 0;
  for (const [name, v] of model.store.all()) {
    entries.push({ name, shape: v.shape, offset: total });
    total += v.size;
  }
  const data = new Float32Array(total);
  const all = model.store.all();
  for (let i = 0; i < all.length; i++) data.set(await all[i][1].data() as Float32Array, entries[i].offset);
  return { manifest: { format: FORMAT_NAME, version: FORMAT_VERSION, spec: model.spec, preprocessing, ...extra, weights: entries }, data };
}

/** Writes a file and flushes it to disk before returning. */
export function writeFlushed(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  writeFlushed(tmp, data);
  fs.renameSync(tmp, file);
}

export async function saveModel(model: DeepLab, dir: string, preprocessing: Preprocessing, extra: Pick<Manifest, 'classNames' | 'meta'> = {}): Promise<Manifest> {
  const { manifest, data } = await serialize(model, preprocessing, extra);
  writeSaved(dir, { manifest, data });
  return manifest;
}

export function writeSaved(dir: string, saved: SavedWeights): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, WEIGHTS_FILE), new Uint8Array(saved.data.buffer, saved.data.byteOffset, saved.data.byteLength));
  writeFileAtomic(path.join(dir, MANIFEST_FILE), JSON.stringify(saved.manifest, null, 1));
}

export function parseManifest(text: string, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (m.format !== FORMAT_NAME) throw new Error(`${where}: not a ${FORMAT_NAME} manifest (format "${m.format}")`);
  if (m.version > FORMAT_VERSION) throw new Error(`${where}: format version ${m.version} is newer than this package reads (${FORMAT_VERSION})`);
  if (!m.spec || !Array.isArray(m.weights)) throw new Error(`${where}: manifest lacks spec or weights`);
  return m;
}

function toFloat32(buf: Uint8Array, where: string, manifest: Manifest): Float32Array {
  if (buf.byteLength % 4 !== 0) throw new Error(`${where}: weights file size ${buf.byteLength} is not a multiple of 4`);
  const copy = new Uint8Array(buf.byteLength);
  copy.set(buf);
  const data = new Float32Array(copy.buffer);
  const need = manifest.weights.reduce((n, w) => Math.max(n, w.offset + w.shape.reduce((a, b) => a * b, 1)), 0);
  if (data.length < need) throw new Error(`${where}: weights file holds ${data.length} values, the manifest needs ${need} (truncated?)`);
  return data;
}

export function readSavedDir(dir: string): SavedWeights {
  const mf = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(mf)) throw new Error(`no ${MANIFEST_FILE} in ${dir}: not a saved DeepLab model directory`);
  const manifest = parseManifest(fs.readFileSync(mf, 'utf8'), mf);
  return { manifest, data: toFloat32(fs.readFileSync(path.join(dir, WEIGHTS_FILE)), path.join(dir, WEIGHTS_FILE), manifest) };
}

/**
 * Loads from an http(s) URL: either the manifest's URL or the folder holding it. Time limits as in
 * download.ts (connect 15 s, total from the option or $DEEPLAB_DOWNLOAD_TIMEOUT); errors name the URL and the cause.
 */
export async function readSavedUrl(url: string, timeouts: HttpTimeouts = {}): Promise<SavedWeights> {
  const manifestUrl = url.endsWith('.json') ? url : `${url.replace(/\/+$/, '')}/${MANIFEST_FILE}`;
  const manifest = parseManifest((await fetchBytes(manifestUrl, timeouts)).toString('utf8'), manifestUrl);
  const weightsUrl = new URL(WEIGHTS_FILE, manifestUrl).toString();
  const buf = await fetchBytes(weightsUrl, timeouts);
  return { manifest, data: toFloat32(buf, weightsUrl, manifest) };
}

/** What an assignment did: tensors copied, and the network's parameters left as they were. */
export interface AssignResult {
  loaded: number;
  skipped: string[];
}

/**
 * Copies saved values into the model's variables by name. Strict (the default): every
 * parameter must be present with its shape. Partial (fine-tuning to other classes, initialising
 * from a backbone): parameters missing or of another shape keep their values and are reported.
 */
export function assignWeights(model: DeepLab, saved: SavedWeights, opts: { partial?: boolean } = {}): AssignResult {
  const byName = new Map(saved.manifest.weights.map((w) => [w.name, w]));
  const skipped: string[] = [];
  let loaded = 0;
  for (const [name, v] of model.store.all()) {
    const w = byName.get(name);
    const sameShape = w !== undefined && w.shape.join('x') === v.shape.join('x');
    if (!sameShape) {
      if (w && !opts.partial) throw new Error(`weight ${name}: saved shape [${w.shape}] does not match the network's [${v.shape}]`);
      skipped.push(name);
      continue;
    }
    tf.tidy(() => v.assign(tf.tensor(saved.data.subarray(w.offset, w.offset + v.size), v.shape, 'float32')));
    loaded++;
  }
  if (skipped.length && !opts.partial) {
    if (saved.manifest.meta?.partial === 'backbone') {
      throw new Error(`these weights hold only an ImageNet backbone (${loaded} of ${loaded + skipped.length} parameters): train from them (the train node's initial weights), they cannot segment as they are`);
    }
    throw new Error(`saved weights lack ${skipped.length} parameters of the network (first: ${skipped.slice(0, 3).join(', ')})`);
  }
  return { loaded, skipped };
}
