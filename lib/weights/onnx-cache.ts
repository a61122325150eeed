/**
 * Exported ONNX graphs of our networks, cached on disk next to the weights they were made from,
 * so that a second load (another node, a redeploy, a restart) creates its ONNX Runtime session
 * without exporting again. The key is a hash of the exporter's format version, the network's
 * spec and the weights' bytes: new weights, another network or another exporter miss the cache,
 * and a file written for older weights is removed when the new one is stored.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { WeightsSource } from '../models/config';
import type { ModelSpec } from '../models/deeplab';
import { findPublished } from './catalogue';
import { defaultCacheDir } from './download';
import { writeFileAtomic } from './format';
import { convertedDir } from './published';

export const ONNX_CACHE_FOLDER = 'onnx';

let fingerprint: string | undefined;
/**
 * The exporter's version as the cache sees it: a hash of the code that writes the graph (every
 * module of lib/models, where each layer's export sits next to its forward pass), so an export
 * made by an older or newer version of the package is never taken for this one's.
 */
export function exporterFingerprint(): string {
  if (!fingerprint) {
    const h = createHash('sha256');
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(js|ts)$/.test(e.name) && !e.name.endsWith('.d.ts')) h.update(e.name).update(fs.readFileSync(p));
      }
    };
    walk(path.join(__dirname, '..', 'models'));
    fingerprint = h.digest('hex').slice(0, 16);
  }
  return fingerprint;
}

/** The cache key of an export: hex sha-256 over the exporter version, the spec and the weights. */
export function onnxCacheKey(exporterVersion: string | number, spec: ModelSpec, weights: Float32Array): string {
  const h = createHash('sha256');
  h.update(`deeplab-onnx\n${exporterVersion}\n${JSON.stringify(spec)}\n`);
  h.update(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength));
  return h.digest('hex');
}

/**
 * The folder the exports of a source's weights are cached in: `onnx/` inside a saved-model folder
 * (ours, or a published entry's converted folder), or beside a checkpoint file. Undefined where
 * there is no folder of weights (random initialisation, a URL).
 */
export function onnxCacheFolder(source: WeightsSource): string | undefined {
  switch (source.source) {
    case 'dir': return path.join(source.path, ONNX_CACHE_FOLDER);
    case 'published': return path.join(convertedDir(findPublished(source.id), source.cacheDir || defaultCacheDir()), ONNX_CACHE_FOLDER);
    case 'checkpoint': return path.join(path.dirname(source.path), `${path.basename(source.path)}.${ONNX_CACHE_FOLDER}`);
    default: return undefined;
  }
}

function fileOf(folder: string, key: string): string {
  return path.join(folder, `${key.slice(0, 32)}.onnx`);
}

/** The cached export for this key, if there is one. */
export function readCachedOnnx(folder: string, key: string): { bytes: Uint8Array; file: string } | undefined {
  const file = fileOf(folder, key);
  try {
    const b = fs.readFileSync(file);
    return { bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), file };
  } catch {
    return undefined;
  }
}

/**
 * Stores an export (atomically) and removes the folder's exports of other weights. Returns the
 * file, or undefined with the reason when the folder cannot be written (a read-only weights
 * folder): the session is then built from memory and the next load exports again.
 */
export function writeCachedOnnx(folder: string, key: string, bytes: Uint8Array): { file?: string; error?: string } {
  const file = fileOf(folder, key);
  try {
    fs.mkdirSync(folder, { recursive: true });
    writeFileAtomic(file, bytes);
  } catch (err) {
    return { error: `cannot cache the ONNX export in ${folder}: ${(err as Error).message}` };
  }
  for (const name of fs.readdirSync(folder)) {
    if (name.endsWith('.onnx') && path.join(folder, name) !== file) fs.rmSync(path.join(folder, name), { force: true });
  }
  return { file };
}
