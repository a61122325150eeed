/**
 * Reading PyTorch checkpoints (.pth, .pth.tar, .pt) into plain host tensors, executing nothing:
 * both of torch.save's containers (zip since torch 1.6; the legacy pickle sequence before), a pickle
 * VM that only builds data through an allow-list, and the state dict found inside the usual wrappers.
 * Memory stays bounded: the pickle and then each storage the state dict uses are read once, one at a
 * time, and sizes the file cannot back are refused before anything is allocated.
 */
import { hasLegacyMagic, openLegacyContainer } from './legacy';
import { fileSource, memorySource, Source } from './source';
import { HostTensor, materialize, ReadStats, Scalar, unwrapStateDict } from './state-dict';
import { Container, openZipContainer } from './zip';

export type { TorchDtype } from './dtypes';
export type { HostTensor, ReadStats, Scalar } from './state-dict';
export { CONTAINER_KEYS } from './state-dict';

export interface TorchCheckpoint {
  format: 'zip' | 'legacy';
  /** The state dict, unwrapped, with DataParallel's `module.` stripped; in the file's order. */
  tensors: Map<string, HostTensor>;
  /** The checkpoint dict's key the state dict was found under ('state_dict', 'model', ...), when it was wrapped. */
  container?: string;
  /** The other scalar entries of the checkpoint dict (epoch, best_pred; numpy scalars as numbers). */
  meta: Record<string, Scalar>;
  /** What was read: only the storages the state dict uses (an optimizer's state is left unread). */
  stats: ReadStats;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

async function detect(src: Source): Promise<'zip' | 'legacy'> {
  const head = await src.read(0, Math.min(src.size, 512));
  if (head.length >= 4 && ZIP_MAGIC.every((b, i) => head[i] === b)) return 'zip';
  if (head[0] === 0x80 && hasLegacyMagic(head)) return 'legacy';
  // Before torch 0.4 torch.save wrote a tar archive; its header says "ustar" at byte 257.
  if (head.length >= 262 && new TextDecoder('latin1').decode(head.subarray(257, 262)) === 'ustar') {
    throw new Error('a tar-format checkpoint (torch < 0.4), which this reader does not read: load and re-save it with a newer torch');
  }
  if (src.size === 0) throw new Error('not a PyTorch checkpoint (the file is empty)');
  throw new Error('not a PyTorch checkpoint (neither a zip archive nor a legacy pickle)');
}

async function read(src: Source): Promise<TorchCheckpoint> {
  const format = await detect(src);
  let container: Container & { close?(): void };
  if (format === 'zip') container = await openZipContainer(src);
  else container = await openLegacyContainer(src);
  try {
    const unwrapped = unwrapStateDict(container.value);
    const { tensors, stats } = await materialize(unwrapped.tensors, container);
    return { format, tensors, container: unwrapped.container, meta: unwrapped.meta, stats };
  } finally {
    container.close?.();
  }
}

/** Every error names where the checkpoint came from and, once, what is wrong with it. */
function located(where: string, err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  return new Error(msg.startsWith(`${where}: `) ? msg : `${where}: ${msg}`, { cause: err });
}

/** Reads a checkpoint file (zip or legacy), reading only what the state dict needs. */
export async function readTorchCheckpoint(file: string): Promise<TorchCheckpoint> {
  let src: Source;
  try {
    src = await fileSource(file);
  } catch (err) {
    throw located(file, err);
  }
  try {
    return await read(src);
  } catch (err) {
    throw located(file, err);
  } finally {
    await src.close();
  }
}

/** The same from bytes in memory (a download, a test); `where` names them in errors. */
export async function readTorchCheckpointBytes(bytes: Uint8Array, where = 'checkpoint bytes'): Promise<TorchCheckpoint> {
  try {
    return await read(memorySource(bytes));
  } catch (err) {
    throw located(where, err);
  }
}
