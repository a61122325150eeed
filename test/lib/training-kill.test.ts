/**
 * A training process killed (SIGKILL) while it writes or publishes a checkpoint leaves the newest
 * complete checkpoint loadable: at each point between the files of a write, between the folder's
 * rename and latest.json, after latest.json, in the middle of publishing, and at random moments of
 * a process writing checkpoints back to back. The leftovers of a dead writer are removed when
 * training starts; those of a live one stay.
 */
import { strict as assert } from 'assert';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DeepLab } from '../../lib/models/deeplab';
import { assignWeights } from '../../lib/weights/format';
import { findLatestCheckpoint, LATEST_FILE, listCheckpoints, publishedCheckpoint, removeStaleTemps } from '../../lib/training/checkpoint';
import { readSavedDir } from '../../lib/weights/format';
import { normalizeTrainConfig } from '../../lib/training/config';
import { Trainer } from '../../lib/training/trainer';
import { tfReady } from '../helpers/tf-setup';

const DIST = path.resolve(__dirname, '../..');
const SPEC = { variant: 'v3plus', backbone: 'mobilenetv2', classes: 3, width: 0.0625 };

/**
 * The child: a real (tiny) model serialised once; checkpoint i holds its weights + i, padded
 * with a large optimizer state so a write takes a while. Modes: "hook:<file>" writes
 * checkpoint 1, then blocks inside the write of checkpoint 2 right after <file> is flushed;
 * "at:rename" / "at:latest" block after checkpoint 2's folder is renamed into place / after
 * latest.json names it; "publish" publishes checkpoint 1, writes 2 and blocks in its publishing
 * between making the new link and switching `published` to it; "loop" writes checkpoints
 * 1, 2, 3, ... until killed.
 */
const CHILD = `
const path = require('path');
const dist = ${JSON.stringify(DIST)};
const { DeepLab } = require(path.join(dist, 'lib/models/deeplab'));
const { serialize } = require(path.join(dist, 'lib/weights/format'));
const { publishCheckpoint, writeCheckpoint } = require(path.join(dist, 'lib/training/checkpoint'));
const { normalizeTrainConfig } = require(path.join(dist, 'lib/training/config'));
const [root, mode] = process.argv.slice(1);
(async () => {
  const model = new DeepLab(${JSON.stringify(SPEC)});
  const base = await serialize(model, 'tanh');
  const config = normalizeTrainConfig({ model: { spec: model.spec }, train: { kind: 'synthetic', count: 1 } });
  const big = new Float32Array(4 * 1024 * 1024);
  const data = (i, hooks) => [{
    saved: { manifest: base.manifest, data: base.data.map((v) => v + i) },
    optimizer: { entries: [{ name: 'pad', shape: [big.length], offset: 0 }], data: big.fill(i) },
    state: { iteration: i, config, rng: { scheme: 'counter', seed: 1, samplesSeen: i }, metrics: { evals: [] }, elapsedMs: 0 },
  }, 2, hooks];
  const block = (what) => {
    console.log('MIDWRITE ' + what);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  };
  if (mode.startsWith('at:')) {
    await writeCheckpoint(root, ...data(1, {}));
    console.log('DONE 1');
    const at = mode.slice(3);
    await writeCheckpoint(root, ...data(2, at === 'rename' ? { afterRename: () => block(at) } : { afterLatest: () => block(at) }));
    console.log('DONE 2');
  } else if (mode === 'publish') {
    publishCheckpoint(root, await writeCheckpoint(root, ...data(1, {})));
    console.log('DONE 1');
    const dir2 = await writeCheckpoint(root, ...data(2, {}));
    console.log('DONE 2');
    publishCheckpoint(root, dir2, { afterLink: () => block('publish') });
    console.log('PUBLISHED 2');
  } else if (mode.startsWith('hook:')) {
    const target = mode.slice(5);
    await writeCheckpoint(root, ...data(1, {}));
    console.log('DONE 1');
    await writeCheckpoint(root, ...data(2, { afterFile: (file) => {
      if (file !== target) return;
      console.log('MIDWRITE ' + file);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    } }));
    console.log('DONE 2');
  } else {
    for (let i = 1; ; i++) {
      await writeCheckpoint(root, ...data(i, {}));
      console.log('DONE ' + i);
    }
  }
})().catch((e) => { console.error(e); process.exit(3); });
`;

function start(root: string, mode: string): { child: ChildProcess; lines: string[]; waitFor: (re: RegExp) => Promise<string> } {
  const child = spawn(process.execPath, ['-e', CHILD, root, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.re.test(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const waitFor = (re: RegExp) => new Promise<string>((resolve, reject) => {
    const hit = lines.find((l) => re.test(l));
    if (hit) return resolve(hit);
    waiters.push({ re, resolve });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before ${re}: ${err}`)));
  });
  return { child, lines, waitFor };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** The newest checkpoint loads into a network; returns its iteration after checking its weights. */
function checkLoadable(root: string, base: Float32Array): number {
  const ck = findLatestCheckpoint(root);
  assert.ok(ck, 'no loadable checkpoint after the kill');
  const it = ck.state.iteration;
  const model = new DeepLab(ck.saved.manifest.spec);
  try {
    assignWeights(model, ck.saved);
  } finally {
    model.dispose();
  }
  for (let i = 0; i < base.length; i += 97) assert.equal(ck.saved.data[i], Math.fround(base[i] + it), `weights of checkpoint ${it} at ${i}`);
  assert.ok(ck.optimizer.data.every((v, i) => i % 4099 !== 0 || v === it));
  return it;
}

describe('lib/training: a process killed while writing a checkpoint', () => {
  let base: Float32Array;
  const roots: string[] = [];
  before(async () => {
    await tfReady();
    const { serialize } = await import('../../lib/weights/format');
    const model = new DeepLab(SPEC as never);
    base = (await serialize(model, 'tanh')).data;
    model.dispose();
  });
  after(() => {
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });
  const newRoot = () => {
    const r = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-kill-'));
    roots.push(r);
    return r;
  };

  for (const file of ['weights.bin', 'deeplab.json', 'optimizer.bin', 'training-state.json']) {
    it(`killed right after ${file} of the next checkpoint is flushed: the previous one loads`, async () => {
      const root = newRoot();
      const p = start(root, `hook:${file}`);
      try {
        await p.waitFor(/^MIDWRITE /);
      } finally {
        await kill(p.child);
      }
      assert.ok(!p.lines.includes('DONE 2'));
      assert.equal(checkLoadable(root, base), 1);
      // The half-written folder is left aside, never taken for a checkpoint.
      assert.deepEqual(listCheckpoints(root).map((c) => c.iteration), [1]);
      assert.ok(fs.readdirSync(root).some((n) => n.startsWith('.tmp-ckpt-')));
    });
  }

  /** Starts a child in `mode`, waits until it blocks, kills it (SIGKILL); returns its output. */
  async function killedAt(root: string, mode: string): Promise<string[]> {
    const p = start(root, mode);
    try {
      await p.waitFor(/^MIDWRITE /);
    } finally {
      await kill(p.child);
    }
    return p.lines;
  }
  const latestJson = (root: string) => (JSON.parse(fs.readFileSync(path.join(root, LATEST_FILE), 'utf8')) as { iteration: number }).iteration;
  const temps = (root: string) => fs.readdirSync(root).filter((n) => n.startsWith('.tmp-'));

  it('killed between the folder rename and latest.json: resumes from the newer checkpoint although latest.json lags', async () => {
    const root = newRoot();
    const lines = await killedAt(root, 'at:rename');
    assert.ok(!lines.includes('DONE 2'));
    assert.equal(latestJson(root), 1, 'the pointer lags one behind');
    assert.equal(checkLoadable(root, base), 2);
  });

  it('killed right after latest.json (before pruning): the new checkpoint loads', async () => {
    const root = newRoot();
    await killedAt(root, 'at:latest');
    assert.equal(latestJson(root), 2);
    assert.equal(checkLoadable(root, base), 2);
  });

  it('killed in the middle of publishing: `published` is one whole checkpoint, and the stale link goes at the next start', async () => {
    const root = newRoot();
    const lines = await killedAt(root, 'publish');
    assert.ok(lines.includes('DONE 2') && !lines.includes('PUBLISHED 2'));
    assert.equal(publishedCheckpoint(root), 'ckpt-00000001');
    const published = readSavedDir(path.join(root, 'published'));
    assert.equal(published.data[0], Math.fround(base[0] + 1), 'the manifest and weights of iteration 1, not a mix');
    assert.deepEqual(temps(root).map((n) => n.replace(/-p\d+s.*$/, '')), ['.tmp-published']);
    assert.deepEqual(removeStaleTemps(root).map((n) => n.replace(/-p\d+s.*$/, '')), ['.tmp-published']);
    assert.deepEqual(temps(root), []);
    // Removing the link removed nothing it pointed to.
    assert.deepEqual(listCheckpoints(root).map((c) => c.iteration), [1, 2]);
    assert.equal(checkLoadable(root, base), 2);
  });

  it("a live writer's temporary folder is left alone; once it is dead, starting a training removes it", async () => {
    const root = newRoot();
    const p = start(root, 'hook:optimizer.bin');
    try {
      await p.waitFor(/^MIDWRITE /);
      const live = temps(root);
      assert.equal(live.length, 1);
      assert.deepEqual(removeStaleTemps(root), [], 'the writer is alive');
      assert.deepEqual(temps(root), live);
    } finally {
      await kill(p.child);
    }
    // Leftovers of other kinds: an older version's names, and one of an earlier process that had our pid.
    const startS = Math.round((Date.now() - process.uptime() * 1000) / 1000);
    const namesake = `.tmp-ckpt-7-p${process.pid}s${(startS - 3600).toString(36)}-x`;
    const ours = `.tmp-ckpt-8-p${process.pid}s${startS.toString(36)}-x`;
    for (const n of ['.tmp-ckpt-5-999999999-1', namesake, ours]) fs.mkdirSync(path.join(root, n));
    fs.writeFileSync(path.join(root, 'latest.json.999999999.1.tmp'), '{');
    const config = normalizeTrainConfig({ model: { spec: SPEC as never }, train: { kind: 'synthetic', count: 1 }, checkpointDir: root, dataWorker: false });
    const t = await Trainer.create(config);
    try {
      assert.equal(t.iteration, 1, 'resumed from checkpoint 1');
    } finally {
      t.dispose();
    }
    // Only the folder this very process could still be writing (same pid and start) stays.
    assert.deepEqual(temps(root), [ours]);
    assert.ok(!fs.existsSync(path.join(root, 'latest.json.999999999.1.tmp')));
  });

  it('killed at random moments while writing checkpoints back to back: always a whole, recent checkpoint', async () => {
    let rnd = 12345;
    const next = () => (rnd = (rnd * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let round = 0; round < 4; round++) {
      const root = newRoot();
      const p = start(root, 'loop');
      let lastDone = 0;
      try {
        const first = await p.waitFor(/^DONE /);
        lastDone = Number(first.split(' ')[1]);
        await new Promise((r) => setTimeout(r, 20 + next() * 400));
      } finally {
        await kill(p.child);
      }
      for (const l of p.lines) if (l.startsWith('DONE ')) lastDone = Math.max(lastDone, Number(l.split(' ')[1]));
      const it = checkLoadable(root, base);
      // The newest is the last one reported, or the one whose report the kill cut off.
      assert.ok(it === lastDone || it === lastDone + 1, `loaded ${it}, last reported ${lastDone}`);
    }
  });
});
