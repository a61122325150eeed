/**
 * Publishing a checkpoint for hot swapping: no second copy of the weights, an atomic switch that
 * a concurrent reader never sees half-done, and a published checkpoint that pruning keeps.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import { DeepLab } from '../../lib/models/deeplab';
import {
  CheckpointData, checkpointName, clearCheckpoints, listCheckpoints, PUBLISHED_DIR, publishCheckpoint, publishedCheckpoint, writeCheckpoint,
} from '../../lib/training/checkpoint';
import { normalizeTrainConfig } from '../../lib/training/config';
import { readSavedDir, SavedWeights, serialize } from '../../lib/weights/format';

const spec = { variant: 'v3plus' as const, backbone: 'mobilenetv2' as const, classes: 3, width: 0.0625 };
const config = normalizeTrainConfig({ model: { spec }, train: { kind: 'synthetic', count: 2 } });

/** A checkpoint whose every weight is its iteration (a mixed read would show two values). */
function checkpointAt(base: SavedWeights, iteration: number): CheckpointData {
  return {
    saved: { manifest: { ...base.manifest, meta: { iteration } }, data: new Float32Array(base.data.length).fill(iteration) },
    optimizer: { entries: [], data: new Float32Array(0) },
    state: { iteration, config, rng: { scheme: 'counter', seed: 1, samplesSeen: 0 }, metrics: { evals: [] }, elapsedMs: 0 },
  };
}

describe('lib/training/checkpoint: publishing for hot swap', function () {
  this.timeout(600_000);
  let base: SavedWeights;
  let root: string;
  before(async () => {
    const model = new DeepLab(spec);
    base = await serialize(model, 'tanh');
    model.dispose();
  });
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-publish-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('publishes by linking the checkpoint folder: the weights are written once', async () => {
    const dir = await writeCheckpoint(root, checkpointAt(base, 1), 3);
    const published = publishCheckpoint(root, dir);
    assert.equal(published, path.join(root, PUBLISHED_DIR));
    assert.ok(fs.lstatSync(published).isSymbolicLink());
    assert.equal(publishedCheckpoint(root), checkpointName(1));
    const weights = (d: string) => fs.statSync(path.join(d, 'weights.bin'));
    assert.equal(weights(published).ino, weights(dir).ino, 'the same file, not a copy');
    assert.equal(readSavedDir(published).manifest.meta?.iteration, 1);
  });

  it('switches atomically: a reader polling the published model always reads one whole iteration', async () => {
    publishCheckpoint(root, await writeCheckpoint(root, checkpointAt(base, 1), 100));
    // The reader resolves the link once per read, as the model host does, in another thread.
    const stop = new SharedArrayBuffer(4);
    const reader = new Worker(`
      const fs = require('fs');
      const { workerData, parentPort } = require('worker_threads');
      const { readSavedDir } = require(workerData.format);
      const stop = new Int32Array(workerData.stop);
      const seen = new Set();
      let reads = 0;
      while (Atomics.load(stop, 0) === 0 || reads === 0) {
        const s = readSavedDir(fs.realpathSync(workerData.published));
        const it = s.manifest.meta.iteration;
        if (!s.data.every((v) => v === it)) throw new Error('weights of another iteration than the manifest ' + it);
        seen.add(it);
        if (reads++ === 0) parentPort.postMessage('reading');
      }
      parentPort.postMessage({ reads, seen: [...seen] });
    `, { eval: true, workerData: { format: require.resolve('../../lib/weights/format'), published: path.join(root, PUBLISHED_DIR), stop } });
    const reading = new Promise((resolve) => reader.once('message', resolve));
    const result = reading.then(() => new Promise<{ reads: number; seen: number[] }>((resolve) => reader.once('message', resolve)));
    const failed = new Promise<never>((_, reject) => reader.once('error', reject));
    await Promise.race([reading, failed]);
    for (let it = 2; it <= 40; it++) {
      publishCheckpoint(root, await writeCheckpoint(root, checkpointAt(base, it), 100));
      await new Promise((r) => setImmediate(r));
    }
    Atomics.store(new Int32Array(stop), 0, 1);
    const r = await Promise.race([result, failed]);
    await reader.terminate();
    assert.ok(r.seen.length > 1, `the reader saw the link switch (${r.reads} reads, iterations ${r.seen.join(', ')})`);
    assert.ok(r.seen.every((it) => it >= 1 && it <= 40));
    assert.equal(readSavedDir(path.join(root, PUBLISHED_DIR)).manifest.meta?.iteration, 40);
  });

  it('pruning keeps the published checkpoint; a restart from scratch removes the link', async () => {
    const first = await writeCheckpoint(root, checkpointAt(base, 1), 1);
    publishCheckpoint(root, first);
    await writeCheckpoint(root, checkpointAt(base, 2), 1);
    await writeCheckpoint(root, checkpointAt(base, 3), 1);
    assert.deepEqual(listCheckpoints(root).map((c) => c.iteration), [1, 3], 'the published one stays');
    publishCheckpoint(root, path.join(root, checkpointName(3)));
    await writeCheckpoint(root, checkpointAt(base, 4), 1);
    assert.deepEqual(listCheckpoints(root).map((c) => c.iteration), [3, 4]);
    clearCheckpoints(root);
    assert.ok(!fs.existsSync(path.join(root, PUBLISHED_DIR)) && publishedCheckpoint(root) === undefined);
    assert.deepEqual(fs.readdirSync(root), []);
  });

  it('replaces a published folder of files (an older version\'s) by the link', async () => {
    fs.mkdirSync(path.join(root, PUBLISHED_DIR));
    fs.writeFileSync(path.join(root, PUBLISHED_DIR, 'weights.bin'), 'old');
    publishCheckpoint(root, await writeCheckpoint(root, checkpointAt(base, 7), 3));
    assert.equal(publishedCheckpoint(root), checkpointName(7));
    assert.equal(readSavedDir(path.join(root, PUBLISHED_DIR)).manifest.meta?.iteration, 7);
  });
});
