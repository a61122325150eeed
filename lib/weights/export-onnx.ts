/**
 * A saved model or a checkpoint as an .onnx file: the weights are read the way every other user
 * reads them (load.ts), put into the network their manifest describes, and exported from our own
 * module tree (models/onnx). The manifest's preprocessing, class names and provenance travel in the
 * file's metadata, so a runner needs nothing else.
 */
import * as fs from 'fs';
import * as path from 'path';
import { WeightsSource } from '../models/config';
import { DeepLab, ModelSpec } from '../models/deeplab';
import { exportOnnx } from '../models/onnx/export';
import { assignWeights, MANIFEST_FILE, writeFileAtomic } from './format';
import { readWeights } from './load';
import type { PrepareOptions } from './published';

export interface OnnxFileOptions extends PrepareOptions {
  /** Further metadata_props for the file. */
  metadata?: Record<string, string>;
}

export interface OnnxFileResult {
  file: string;
  bytes: number;
  spec: ModelSpec;
  logitStride: number;
}

/** How the command line names a source: a saved-model folder, or a checkpoint file (as `import` takes it). */
export function sourceForPath(p: string, checkpoint: { layout?: string; outputStride?: 8 | 16 } = {}): WeightsSource {
  if (!fs.existsSync(p)) throw new Error(`${p}: no such file or folder`);
  if (fs.statSync(p).isDirectory()) {
    if (!fs.existsSync(path.join(p, MANIFEST_FILE))) throw new Error(`${p}: a folder without ${MANIFEST_FILE} is not a saved model`);
    return { source: 'dir', path: p };
  }
  return { source: 'checkpoint', path: p, ...checkpoint };
}

/** Exports the network with the weights a source names to `file` (written atomically). */
export async function exportOnnxFile(source: WeightsSource, file: string, opts: OnnxFileOptions = {}): Promise<OnnxFileResult> {
  const saved = await readWeights(source, opts);
  if (!saved) throw new Error('random weights have nothing to export: name a saved model folder, a checkpoint or a published id');
  const m = saved.manifest;
  const model = new DeepLab(m.spec);
  try {
    assignWeights(model, saved);
    const bytes = exportOnnx(model, { preprocessing: m.preprocessing, classNames: m.classNames, meta: m.meta, metadata: opts.metadata });
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    writeFileAtomic(file, bytes);
    return { file, bytes: bytes.length, spec: model.spec, logitStride: model.logitStride };
  } finally {
    model.dispose();
  }
}
