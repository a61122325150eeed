/** Importing a checkpoint file: the PyTorch reader hands its state dict to importStateDict. */
import { Imported, ImportOptions, importStateDict } from './import';
import { readTorchCheckpoint } from './torch';

export async function importCheckpoint(file: string, opts: ImportOptions = {}): Promise<Imported> {
  const ckpt = await readTorchCheckpoint(file);
  try {
    return importStateDict(ckpt.tensors, { ...opts, meta: { sourceFile: file, ...opts.meta } });
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}
