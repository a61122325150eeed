/**
 * One loader for every weights source a model config can name. Everything that needs saved
 * weights (the model host, training, the CRF search, the CLI) reads them through here, so a new
 * source (a PyTorch checkpoint, a published id) is added in one place.
 */
import { WeightsSource } from '../models/config';
import { readSavedDir, readSavedUrl, SavedWeights } from './format';

/** Reads the weights a source names; undefined for seeded random initialisation. */
export async function readWeights(source: WeightsSource): Promise<SavedWeights | undefined> {
  switch (source.source) {
    case 'random':
      return undefined;
    case 'dir':
      return readSavedDir(source.path);
    case 'url':
      return readSavedUrl(source.url);
  }
}
