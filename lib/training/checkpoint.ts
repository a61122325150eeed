/**
 * Training checkpoints: our saved model format plus what an exact resume needs.
 *
 *   <root>/ckpt-00001000/deeplab.json, weights.bin   the model (lib/weights/format), loadable as is
 *                       /optimizer.bin               momentum buffers, float32, by name
 *                       /training-state.json         iteration, RNG position, config, metrics
 *   <root>/latest.json                               the newest complete checkpoint
 *   <root>/published -> ckpt-00001000                 the model last published for hot swapping
 *
 * A checkpoint is written into a temporary folder, every file flushed to disk, then the folder
 * is renamed into place (atomic on one file system) and latest.json replaced atomically. A
 * process killed at any moment leaves the previous checkpoint whole; the leftover temporary
 * folder is removed by the next write. Only the newest `keep` checkpoints are kept.
 *
 * Publishing writes no weights: `published` is a symbolic link switched to the new checkpoint
 * folder by one rename (atomic), and a checkpoint folder never changes once in place. A reader
 * that resolves the link once (the model host does) reads the manifest and the weights of one
 * iteration, never a mix; the published checkpoint is never pruned. Where links cannot be made
 * (Windows without the right), the files are copied into a `published` folder instead.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MANIFEST_FILE, readSavedDir, SavedWeights, WEIGHTS_FILE, writeFileAtomic, writeFlushed, writeSaved } from '../weights/format';
import { TrainConfig } from './config';
import { OptimizerState } from './optimizer';

export const STATE_FILE = 'training-state.json';
export const OPTIMIZER_FILE = 'optimizer.bin';
export const LATEST_FILE = 'latest.json';
export const PUBLISHED_DIR = 'published';
export const STATE_FORMAT = 'node-red-deeplab-training';
export const STATE_VERSION = 1;

const CKPT_RE = /^ckpt-(\d{8,})$/;
const TMP_PREFIX = '.tmp-ckpt-';
const TMP_LINK_PREFIX = '.tmp-published-';

export interface EvalRecord {
  iteration: number;
  meanIoU: number | null;
  pixelAccuracy: number | null;
}

export interface TrainingState {
  format: typeof STATE_FORMAT;
  version: number;
  /** Iterations completed. */
  iteration: number;
  /** The run's configuration (in-memory data sets recorded by size only). */
  config: TrainConfig;
  /** Counter-based RNG: every draw is a function of the seed and the samples consumed. */
  rng: { scheme: 'counter'; seed: number; samplesSeen: number };
  optimizer: { file: typeof OPTIMIZER_FILE; entries: OptimizerState['entries'] };
  metrics: { loss?: number; evals: EvalRecord[]; best?: EvalRecord };
  /** Training time so far (ms), for images/s and ETA across resumes. */
  elapsedMs: number;
  savedAt: string;
}

export interface CheckpointData {
  saved: SavedWeights;
  optimizer: OptimizerState;
  state: Omit<TrainingState, 'format' | 'version' | 'optimizer' | 'savedAt'>;
}

export interface LoadedCheckpoint {
  dir: string;
  saved: SavedWeights;
  optimizer: OptimizerState;
  state: TrainingState;
}

/** Test hooks: called after each file of a checkpoint is flushed (before the folder is renamed into place). */
export interface WriteHooks {
  afterFile?: (file: string, tmpDir: string) => void | Promise<void>;
}

export function checkpointName(iteration: number): string {
  return `ckpt-${String(iteration).padStart(8, '0')}`;
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some platforms cannot open a directory for syncing; the rename is still atomic.
  }
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Numbered checkpoints under root, oldest first. */
export function listCheckpoints(root: string): { name: string; iteration: number; dir: string }[] {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, m: CKPT_RE.exec(name) }))
    .filter((e): e is { name: string; m: RegExpExecArray } => e.m !== null)
    .map((e) => ({ name: e.name, iteration: Number(e.m[1]), dir: path.join(root, e.name) }))
    .sort((a, b) => a.iteration - b.iteration);
}

/** Removes temporary folders left by interrupted writes. */
export function removeStaleTemps(root: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(root);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith(TMP_PREFIX) || n.startsWith(TMP_LINK_PREFIX)) fs.rmSync(path.join(root, n), { recursive: true, force: true });
}

/** Writes a checkpoint; returns its folder. */
export async function writeCheckpoint(root: string, data: CheckpointData, keep: number, hooks: WriteHooks = {}): Promise<string> {
  fs.mkdirSync(root, { recursive: true });
  removeStaleTemps(root);
  const name = checkpointName(data.state.iteration);
  const tmp = path.join(root, `${TMP_PREFIX}${data.state.iteration}-${process.pid}-${Date.now()}`);
  fs.mkdirSync(tmp);
  const state: TrainingState = {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    ...data.state,
    optimizer: { file: OPTIMIZER_FILE, entries: data.optimizer.entries },
    savedAt: new Date().toISOString(),
  };
  // The state file goes last: a folder holding it holds everything.
  const files: [string, string | Uint8Array][] = [
    [WEIGHTS_FILE, bytesOf(data.saved.data)],
    [MANIFEST_FILE, JSON.stringify(data.saved.manifest, null, 1)],
    [OPTIMIZER_FILE, bytesOf(data.optimizer.data)],
    [STATE_FILE, JSON.stringify(state, null, 1)],
  ];
  for (const [file, content] of files) {
    writeFlushed(path.join(tmp, file), content);
    await hooks.afterFile?.(file, tmp);
  }
  fsyncDir(tmp);
  const final = path.join(root, name);
  if (fs.existsSync(final)) {
    // Re-writing the same iteration (a restarted run): move the old one aside first.
    const aside = path.join(root, `${TMP_PREFIX}old-${name}-${process.pid}-${Date.now()}`);
    fs.renameSync(final, aside);
    fs.renameSync(tmp, final);
    fs.rmSync(aside, { recursive: true, force: true });
  } else {
    fs.renameSync(tmp, final);
  }
  fsyncDir(root);
  writeFileAtomic(path.join(root, LATEST_FILE), JSON.stringify({ checkpoint: name, iteration: data.state.iteration }));
  pruneCheckpoints(root, keep, name);
  return final;
}

/** Keeps the newest `keep` numbered checkpoints (and always `protect` and the published one). */
export function pruneCheckpoints(root: string, keep: number, protect?: string): void {
  const all = listCheckpoints(root);
  const published = publishedCheckpoint(root);
  let excess = all.length - Math.max(1, keep);
  for (const c of all) {
    if (excess <= 0) break;
    if (c.name === protect || c.name === published) continue;
    fs.rmSync(c.dir, { recursive: true, force: true });
    excess--;
  }
}

/** Reads a checkpoint folder; throws if any part is missing or inconsistent. */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  const stateFile = path.join(dir, STATE_FILE);
  if (!fs.existsSync(stateFile)) throw new Error(`no ${STATE_FILE} in ${dir}: not a training checkpoint (or an incomplete one)`);
  let state: TrainingState;
  try {
    state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as TrainingState;
  } catch (err) {
    throw new Error(`${stateFile}: not valid JSON (${(err as Error).message})`);
  }
  if (state.format !== STATE_FORMAT) throw new Error(`${stateFile}: not a training state (format "${state.format}")`);
  if (state.version > STATE_VERSION) throw new Error(`${stateFile}: version ${state.version} is newer than this package reads`);
  const saved = readSavedDir(dir);
  const buf = fs.readFileSync(path.join(dir, OPTIMIZER_FILE));
  if (buf.byteLength % 4 !== 0) throw new Error(`${path.join(dir, OPTIMIZER_FILE)}: size ${buf.byteLength} is not a multiple of 4`);
  const data = new Float32Array(buf.byteLength / 4);
  new Uint8Array(data.buffer).set(buf);
  const need = state.optimizer.entries.reduce((n, e) => Math.max(n, e.offset + e.shape.reduce((a, b) => a * b, 1)), 0);
  if (data.length < need) throw new Error(`${path.join(dir, OPTIMIZER_FILE)}: holds ${data.length} values, the state needs ${need} (truncated?)`);
  return { dir, saved, optimizer: { entries: state.optimizer.entries, data }, state };
}

/**
 * The newest loadable checkpoint under root: the one latest.json names, else the highest
 * numbered folder that reads back whole. Undefined when there is none.
 */
export function findLatestCheckpoint(root: string): LoadedCheckpoint | undefined {
  const tried = new Set<string>();
  try {
    const latest = JSON.parse(fs.readFileSync(path.join(root, LATEST_FILE), 'utf8')) as { checkpoint?: string };
    if (latest.checkpoint && CKPT_RE.test(latest.checkpoint)) {
      tried.add(latest.checkpoint);
      return readCheckpoint(path.join(root, latest.checkpoint));
    }
  } catch {
    // Missing or unreadable pointer: scan the folders.
  }
  for (const c of listCheckpoints(root).reverse()) {
    if (tried.has(c.name)) continue;
    try {
      return readCheckpoint(c.dir);
    } catch {
      continue;
    }
  }
  return undefined;
}

/**
 * Removes every numbered checkpoint, the pointer, the published link and leftovers (a run started
 * from scratch: its first checkpoint is published again).
 */
export function clearCheckpoints(root: string): void {
  if (publishedCheckpoint(root)) fs.rmSync(path.join(root, PUBLISHED_DIR), { force: true });
  for (const c of listCheckpoints(root)) fs.rmSync(c.dir, { recursive: true, force: true });
  fs.rmSync(path.join(root, LATEST_FILE), { force: true });
  removeStaleTemps(root);
}

/** The checkpoint folder name `published` links to, if it is a link to one. */
export function publishedCheckpoint(root: string): string | undefined {
  try {
    const target = path.basename(fs.readlinkSync(path.join(root, PUBLISHED_DIR)));
    return CKPT_RE.test(target) ? target : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Publishes a checkpoint folder of `root` for hot swapping: `<root>/published` becomes a link to
 * it, switched atomically (see the header). Returns the published folder's path.
 */
export function publishCheckpoint(root: string, checkpointDir: string): string {
  const published = path.join(root, PUBLISHED_DIR);
  const name = path.basename(checkpointDir);
  const tmp = path.join(root, `${TMP_LINK_PREFIX}${process.pid}-${Date.now()}`);
  try {
    // Relative, so the training folder can be moved or copied as a whole; a junction on Windows.
    fs.symlinkSync(name, tmp, 'junction');
  } catch {
    writeSaved(published, readSavedDir(checkpointDir));
    return published;
  }
  try {
    fs.renameSync(tmp, published);
  } catch {
    // A `published` folder of files (written where no link could be made, or by an older
    // version) cannot be renamed over: it goes first, then the link takes its place.
    fs.rmSync(published, { recursive: true, force: true });
    fs.renameSync(tmp, published);
  }
  fsyncDir(root);
  return published;
}
