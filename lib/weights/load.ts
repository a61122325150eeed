/**
 * One loader for every weights source a model config can name. Everything that needs saved
 * weights (the model host, training, the CRF search, the CLI) reads them through here, so a new
 * source is added in one place.
 */
import { WeightsSource } from '../models/config';
import { findPublished } from './catalogue';
import { readSavedDir, readSavedUrl, SavedWeights } from './format';
import type { LayoutName } from './layouts';
import type { PrepareOptions } from './published';

/** Reads the weights a source names; undefined for seeded random initialisation. */
export async function readWeights(source: WeightsSource, opts: PrepareOptions = {}): Promise<SavedWeights | undefined> {
  switch (source.source) {
    case 'random':
      return undefined;
    case 'dir':
      return readSavedDir(source.path);
    case 'url':
      return readSavedUrl(source.url);
    // The importers (pickle machine, zip reader, layouts: about 9 MB per thread) load only when used.
    case 'checkpoint': {
      const { importCheckpoint } = await import('./import-file');
      const spec = source.outputStride ? { outputStride: source.outputStride } : undefined;
      return (await importCheckpoint(source.path, { layout: (source.layout || 'auto') as LayoutName | 'auto', spec })).saved;
    }
    case 'published': {
      if (findPublished(source.id).format === 'tfjs-graph') throw graphHasNoWeights(`"${source.id}"`);
      const { preparePublished } = await import('./published');
      return readSavedDir(await preparePublished(source.id, { ...opts, cacheDir: source.cacheDir || opts.cacheDir }));
    }
    case 'tfjs-graph':
      throw graphHasNoWeights(source.path || source.url || 'the source');
    case 'onnx':
      throw new Error(`${source.path || source.url} is an ONNX model: it runs as it is on ONNX Runtime for inference, but cannot give weights to one of this package's networks (to train, fine-tune or convert): use the saved model or checkpoint it was exported from`);
  }
}

/** True when a weights source is a model that runs as it is (a TF.js graph or an ONNX file), not weights for our networks. */
export function runsAsItIs(w: WeightsSource): boolean {
  if (w.source === 'onnx' || w.source === 'tfjs-graph') return true;
  if (w.source !== 'published') return false;
  try {
    return findPublished(w.id).format === 'tfjs-graph';
  } catch {
    return false;
  }
}

/** A TF.js graph runs as it is (weights/tfjs-graph): its tensors have no names of our networks to go to. */
function graphHasNoWeights(what: string): Error {
  return new Error(`${what} is a TF.js graph model: it runs as a graph for inference, but cannot give weights to one of this package's networks (to train, fine-tune or convert)`);
}

/** Published weights by catalogue id, downloaded and converted on first use (see published.ts). */
export function loadPublished(id: string, opts: PrepareOptions = {}): Promise<SavedWeights> {
  return readWeights({ source: 'published', id, cacheDir: opts.cacheDir }, opts) as Promise<SavedWeights>;
}
