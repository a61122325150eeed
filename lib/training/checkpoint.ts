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
 * process killed at any moment leaves the previous checkpoint whole. A numbered folder is only
 * ever created by that rename, so every one is complete: resuming takes the newest numbered
 * folder that reads back whole, whatever latest.json says (a kill between the rename and the
 * pointer leaves the pointer one behind). Only the newest `keep` checkpoints are kept.
 *
 * Temporary folders, links and files carry the writer's pid and start time. Those of a process
 * that is gone (or of an earlier process that had our pid: containers reuse pid 1) are removed
 * when training starts and before each write; those of a live writer are left alone.
 *
 * Publishing writes no weights: `published` is a symbolic link switched to the new checkpoint
 * folder by one rename (atomic), and a checkpoint folder never changes once in place. A reader
 * that resolves the link once (the model host does) reads the manifest and the weights of one
 * iteration, never a mix; the published checkpoint is never pruned. Where links cannot be made
 * (Windows without the right), the files are copied into a `published` folder instead.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MANIFEST_FILE, readSavedDir, SavedWeights, WEIGHTS_FILE, writeFlushed, writeSaved } from '../weights/format';
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
const TMP_LATEST_PREFIX = '.tmp-latest-';
const TMP_PREFIXES = [TMP_PREFIX, TMP_LINK_PREFIX, TMP_LATEST_PREFIX];
/** Temporary files of writeFileAtomic (older versions' latest.json, a copied `published` folder): `<file>.<pid>.<ms>.tmp`. */
const LEGACY_TMP_RE = /\.(\d+)\.\d+\.tmp$/;
/** A checkpoint moved aside while the same iteration is re-written. */
const ASIDE_RE = /^\.tmp-ckpt-old-(ckpt-\d{8,})-/;
/** The owner in a temporary name: `p<pid>s<start, seconds, base 36>`. */
const OWNER_RE = /(?:^|-)p(\d+)s([0-9a-z]+)(?:-|$)/;

/** This process's start (seconds since the epoch): process-wide, the same in every worker thread. */
const PROCESS_START_S = Math.round((Date.now() - process.uptime() * 1000) / 1000);
/** Identifies this process in temporary names, telling it apart from an earlier one with the same pid. */
const OWNER = `p${process.pid}s${PROCESS_START_S.toString(36)}`;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a temporary name belongs to a writer that may still be at work (then it is left alone). */
export function tempOwnerAlive(name: string): boolean {
  const legacy = LEGACY_TMP_RE.exec(name);
  if (legacy) return Number(legacy[1]) !== process.pid && processAlive(Number(legacy[1]));
  const m = OWNER_RE.exec(name);
  if (!m) return false; // an older version's name: its writer is long gone
  const pid = Number(m[1]);
  // Our pid: ours (another thread writing now) only if the start time matches, else a dead namesake.
  if (pid === process.pid) return Math.abs(parseInt(m[2], 36) - PROCESS_START_S) <= 2;
  return processAlive(pid);
}

function isTempName(name: string): boolean {
  return TMP_PREFIXES.some((p) => name.startsWith(p)) || LEGACY_TMP_RE.test(name);
}

/** A unique temporary name of this process (writers of one process differ by the counter). */
let tempSeq = 0;
function tempName(prefix: string, what = ''): string {
  return `${prefix}${what ? `${what}-` : ''}${OWNER}-${Date.now().toString(36)}${(tempSeq++).toString(36)}`;
}

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

/** Test hooks (kill tests stop a process at each of these points). */
export interface WriteHooks {
  /** After each file of a checkpoint is flushed (before the folder is renamed into place). */
  afterFile?: (file: string, tmpDir: string) => void | Promise<void>;
  /** After the folder is renamed into place, before latest.json is written. */
  afterRename?: (dir: string) => void | Promise<void>;
  /** After latest.json is written, before older checkpoints are pruned. */
  afterLatest?: (dir: string) => void | Promise<void>;
}

/** Test hook of publishCheckpoint: after the new link is made, before it replaces `published`. */
export interface PublishHooks {
  afterLink?: (tmpLink: string) => void;
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

/**
 * Removes the temporary folders, links and files that interrupted writes left under root (and in
 * a copied `published` folder); those of a writer still alive stay. Returns the names removed.
 */
export function removeStaleTemps(root: string): string[] {
  const removed: string[] = [];
  const sweep = (dir: string, prefix: string) => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (!isTempName(n) || tempOwnerAlive(n)) continue;
      const aside = prefix === '' ? ASIDE_RE.exec(n) : null;
      if (aside && !fs.existsSync(path.join(dir, aside[1]))) {
        // Killed between moving a checkpoint aside and renaming its replacement in: put it back.
        try {
          fs.renameSync(path.join(dir, n), path.join(dir, aside[1]));
          removed.push(n);
          continue;
        } catch {
          // fall through: remove it
        }
      }
      // A link is removed itself, never what it points to.
      fs.rmSync(path.join(dir, n), { recursive: true, force: true });
      removed.push(prefix + n);
    }
  };
  sweep(root, '');
  const published = path.join(root, PUBLISHED_DIR);
  try {
    if (fs.lstatSync(published).isDirectory()) sweep(published, `${PUBLISHED_DIR}/`);
  } catch {
    // no published folder
  }
  return removed;
}

/** Writes a checkpoint; returns its folder. */
export async function writeCheckpoint(root: string, data: CheckpointData, keep: number, hooks: WriteHooks = {}): Promise<string> {
  fs.mkdirSync(root, { recursive: true });
  removeStaleTemps(root);
  const name = checkpointName(data.state.iteration);
  const tmp = path.join(root, tempName(TMP_PREFIX, String(data.state.iteration)));
  fs.mkdirSync(tmp);
  try {
    await writeInto(tmp, data, hooks);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true }); // a failed write (disk full) leaves nothing behind
    throw err;
  }
  const final = path.join(root, name);
  if (fs.existsSync(final)) {
    // Re-writing the same iteration (a restarted run): move the old one aside first.
    const aside = path.join(root, tempName(TMP_PREFIX, `old-${name}`));
    fs.renameSync(final, aside);
    fs.renameSync(tmp, final);
    fs.rmSync(aside, { recursive: true, force: true });
  } else {
    fs.renameSync(tmp, final);
  }
  fsyncDir(root);
  await hooks.afterRename?.(final);
  writeLatest(root, name, data.state.iteration);
  await hooks.afterLatest?.(final);
  pruneCheckpoints(root, keep, name);
  return final;
}

/** latest.json, replaced atomically through a temporary file that carries this process's owner tag. */
function writeLatest(root: string, name: string, iteration: number): void {
  const tmp = path.join(root, tempName(TMP_LATEST_PREFIX));
  writeFlushed(tmp, JSON.stringify({ checkpoint: name, iteration }));
  fs.renameSync(tmp, path.join(root, LATEST_FILE));
}

async function writeInto(tmp: string, data: CheckpointData, hooks: WriteHooks): Promise<void> {
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
 * The newest complete checkpoint under root: the highest numbered folder that reads back whole
 * (see the header: latest.json may lag one behind, so it is not trusted for this). Undefined when
 * there is none.
 */
export function findLatestCheckpoint(root: string): LoadedCheckpoint | undefined {
  for (const c of listCheckpoints(root).reverse()) {
    try {
      return readCheckpoint(c.dir);
    } catch {
      continue; // damaged after the fact (a disk error, a hand edit): the one before it
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
export function publishCheckpoint(root: string, checkpointDir: string, hooks: PublishHooks = {}): string {
  const published = path.join(root, PUBLISHED_DIR);
  const name = path.basename(checkpointDir);
  const tmp = path.join(root, tempName(TMP_LINK_PREFIX));
  try {
    // Relative, so the training folder can be moved or copied as a whole; a junction on Windows.
    fs.symlinkSync(name, tmp, 'junction');
  } catch {
    writeSaved(published, readSavedDir(checkpointDir));
    return published;
  }
  hooks.afterLink?.(tmp);
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
