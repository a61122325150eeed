/**
 * Published weights on this machine: the raw file downloaded once into the cache folder, and
 * converted once into our saved format next to it (`converted/<id>/`), so every later load (a
 * second node, a redeploy, a restart) reads our format without touching the checkpoint again.
 */
import * as fs from 'fs';
import * as path from 'path';
import { findPublished, PublishedEntry } from './catalogue';
import { defaultCacheDir, DownloadProgress, ensureEntry, EnsureOptions } from './download';
import { MANIFEST_FILE, parseManifest, writeSaved } from './format';
import { importCheckpoint } from './import-file';
import { LayoutName } from './layouts';

export interface PrepareProgress {
  phase: 'download' | 'convert';
  download?: DownloadProgress;
}

export interface PrepareOptions extends Omit<EnsureOptions, 'onProgress'> {
  cacheDir?: string;
  onProgress?: (p: PrepareProgress) => void;
}

export function convertedDir(entry: PublishedEntry, cacheDir: string): string {
  return path.join(cacheDir, 'converted', entry.id.replace(/[^A-Za-z0-9._-]+/g, '__'));
}

/** A conversion made from this very file (same size and time) is reused. */
function upToDate(dir: string, raw: string): boolean {
  try {
    const m = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'), dir);
    const st = fs.statSync(raw);
    return m.meta?.sourceSize === st.size && m.meta?.sourceMtimeMs === st.mtimeMs;
  } catch {
    return false;
  }
}

const inFlight = new Map<string, Promise<string>>();

/**
 * Makes a published checkpoint loadable: downloads it (progress, resume, checksum) and converts it.
 * Returns the folder of our saved format, or for a TF.js graph model the path of its model.json.
 * Concurrent calls for one id share the work.
 */
export function preparePublished(id: string, opts: PrepareOptions = {}): Promise<string> {
  return preparePublishedEntry(findPublished(id), opts);
}

export function preparePublishedEntry(entry: PublishedEntry, opts: PrepareOptions = {}): Promise<string> {
  const cacheDir = opts.cacheDir || defaultCacheDir();
  const key = `${cacheDir}\n${entry.id}`;
  let p = inFlight.get(key);
  if (!p) {
    p = prepare(entry, cacheDir, opts).finally(() => inFlight.delete(key));
    inFlight.set(key, p);
  }
  return p;
}

async function prepare(entry: PublishedEntry, cacheDir: string, opts: PrepareOptions): Promise<string> {
  if (entry.format !== 'pytorch' && entry.format !== 'tfjs-graph') {
    throw new Error(`"${entry.id}" is a ${entry.format} model: this version loads PyTorch checkpoints and TF.js graph models only`);
  }
  const raw = await ensureEntry(entry, cacheDir, { ...opts, onProgress: (d) => opts.onProgress?.({ phase: 'download', download: d }) });
  // A TF.js graph is not one of our networks: it runs as it is (weights/tfjs-graph), from its model.json.
  if (entry.format === 'tfjs-graph') return raw;
  const out = convertedDir(entry, cacheDir);
  if (upToDate(out, raw)) return out;
  opts.onProgress?.({ phase: 'convert' });
  const st = fs.statSync(raw);
  const imported = await importCheckpoint(raw, {
    layout: entry.layout as LayoutName,
    spec: { outputStride: entry.spec.outputStride },
    preprocessing: entry.preprocessing,
    classNames: entry.classNames,
    meta: { published: entry.id, url: entry.url, sourceSize: st.size, sourceMtimeMs: st.mtimeMs },
  });
  const want = entry.spec;
  const got = imported.saved.manifest.spec;
  if (got.variant !== want.variant || got.backbone !== want.backbone || got.classes !== want.classes) {
    throw new Error(`${raw} holds a ${got.variant} ${got.backbone} with ${got.classes} classes, but the catalogue's "${entry.id}" is a ${want.variant} ${want.backbone} with ${want.classes}: the file is not the published one`);
  }
  writeSaved(out, imported.saved);
  return out;
}
