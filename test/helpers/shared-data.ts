/**
 * The project's shared test data (../shared/data beside the checkout, or DEEPLAB_SHARED_DATA).
 * A test that needs it fails when it is missing: a broken data path must not pass CI by skipping.
 */
import * as fs from 'fs';
import * as path from 'path';

export const SHARED_DATA = process.env.DEEPLAB_SHARED_DATA ?? path.resolve(__dirname, '../../..', '../shared/data');
export const VOC_SAMPLES = path.join(SHARED_DATA, 'voc-samples');

/** A folder of the shared data; throws naming where it was looked for. */
export function sharedData(sub = ''): string {
  const dir = path.join(SHARED_DATA, sub);
  if (!fs.existsSync(dir)) throw new Error(`shared test data missing: ${dir} (set DEEPLAB_SHARED_DATA to the folder holding voc-samples/)`);
  return dir;
}

/** The JPEG of one VOC sample (e.g. 'vainf_582'). */
export function vocSample(id: string): string {
  const file = path.join(sharedData('voc-samples'), 'JPEGImages', `${id}.jpg`);
  if (!fs.existsSync(file)) throw new Error(`shared test data missing: ${file}`);
  return file;
}
