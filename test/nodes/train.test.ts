/**
 * The train node in Node-RED: control messages, progress and event outputs, refusal of a second
 * start, stop with a checkpoint and resume, pause, hot swap into a running deeplab-infer node,
 * the CRF search as a message dense-crf accepts, and errors routed to Catch.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { catchNode, HANG_MS, helper, messages, nextMessage, TestNode } from '../helpers/red';
import { RawImage, ScoreMap, scoreValues } from '../../lib/contract';
import { inferMaps, loadModel, releaseModel } from '../../lib/compute/model-host';
import { applyCrfOverride, crfPreset } from '../../lib/crf/params';
import { normalizeModelConfig } from '../../lib/models/config';
import { syntheticSample } from '../../lib/data/synthetic';
import { tfReady } from '../helpers/tf-setup';

const trainNode = require('../../nodes/train/train');
const modelNode = require('../../nodes/deeplab-model/deeplab-model');
const inferNode = require('../../nodes/deeplab-infer/deeplab-infer');

type Msg = Record<string, unknown> & { topic?: string; payload?: unknown };

/** Small and quick: 33 px synthetic images, 3 classes, batch 2. */
const SMALL = { synSize: 33, synClasses: 3, synTrain: 8, synVal: 2, batchSize: 2, progressEvery: 1 };

function flow(props: Record<string, unknown>, extra: Record<string, unknown>[] = []) {
  return [
    { id: 't', type: 'deeplab-train', ...SMALL, ...props, wires: [['progress'], ['events']] },
    { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'progress', type: 'helper' }, { id: 'events', type: 'helper' }, { id: 'caught', type: 'helper' },
    ...extra,
  ];
}

/** Resolves with the first message on `node` whose topic is `topic` (others are collected). */
function until(node: TestNode, topic: string, ms = HANG_MS, seen: Msg[] = []): Promise<Msg> {
  const emitter = node as unknown as { on(e: string, f: (m: unknown) => void): void; removeListener(e: string, f: (m: unknown) => void): void };
  return new Promise((resolve, reject) => {
    const onInput = (m: unknown) => {
      const msg = m as Msg;
      seen.push(msg);
      if (msg.topic === topic) {
        clearTimeout(t);
        emitter.removeListener('input', onInput);
        resolve(msg);
      }
    };
    const t = setTimeout(() => {
      emitter.removeListener('input', onInput);
      reject(new Error(`no "${topic}" message within ${ms} ms (saw ${seen.map((m) => m.topic).join(', ')})`));
    }, ms);
    emitter.on('input', onInput);
  });
}

describe('nodes/train', function () {
  this.timeout(HANG_MS);
  const dirs: string[] = [];
  const newDir = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-train-node-'));
    dirs.push(d);
    return d;
  };
  before(async () => {
    await tfReady();
    await new Promise<void>((r) => helper.startServer(() => r()));
  });
  after(async () => {
    await new Promise<void>((r) => helper.stopServer(() => r()));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  afterEach(async () => {
    await helper.unload();
  });

  it('trains on "start": chart-shaped progress, evaluations, checkpoints, done; status with percent; answers "status" while running', async () => {
    const dir = newDir();
    await helper.load([trainNode, catchNode], flow({ maxIter: 6, evalEvery: 3, checkpointEvery: 3, checkpointDir: dir }));
    const t = helper.getNode('t');
    const statuses: string[] = [];
    t.on('call:status', (c) => statuses.push(String((c as { args: [{ text?: string }] }).args[0].text)));
    const events: Msg[] = [];
    const progress = messages<Msg>(helper.getNode('progress'), 6);
    const done = until(helper.getNode('events'), 'done', HANG_MS, events);
    t.receive({ payload: 'start' });
    const p = await progress;
    assert.deepEqual(p.map((m) => (m.payload as { x: number }).x), [1, 2, 3, 4, 5, 6]);
    for (const m of p) {
      const q = m.payload as { x: number; y: number; loss: number; lr: number; percent: number; etaSeconds: number; imagesPerSec: number };
      assert.equal(m.topic, 'loss');
      assert.equal(q.y, q.loss);
      assert.ok(q.loss > 0 && Number.isFinite(q.loss));
      assert.ok(q.lr > 0 && q.imagesPerSec > 0 && q.etaSeconds >= 0);
      assert.equal(q.percent, (100 * q.x) / 6);
    }
    const d = (await done).payload as { reason: string; iteration: number; checkpointDir: string };
    assert.equal(d.reason, 'finished');
    assert.equal(d.iteration, 6);
    const topics = events.map((m) => m.topic);
    assert.deepEqual(topics.filter((x) => x !== 'status'), ['started', 'eval', 'checkpoint', 'eval', 'checkpoint', 'done']);
    const ev = events.find((m) => m.topic === 'eval')!.payload as { x: number; y: number; meanIoU: number; report: { perClass: unknown[] } };
    assert.equal(ev.x, 3);
    assert.equal(ev.y, ev.meanIoU);
    assert.equal(ev.report.perClass.length, 3);
    const ck = events.filter((m) => m.topic === 'checkpoint').map((m) => m.payload as { iteration: number; dir: string; publishedDir: string });
    assert.deepEqual(ck.map((c) => c.iteration), [3, 6]);
    assert.ok(fs.existsSync(path.join(ck[1].dir, 'training-state.json')));
    assert.ok(fs.existsSync(path.join(dir, 'published', 'deeplab.json')));
    assert.ok(statuses.some((s) => /\d+% · it \d+\/6 .*ETA/.test(s)), statuses.join(' | '));
    assert.match(statuses[statuses.length - 1], /^done 6\/6/);
    const st = nextMessage<Msg>(helper.getNode('events'));
    t.receive({ payload: 'status' });
    const s = (await st).payload as { state: string; iteration: number; percent: number };
    assert.deepEqual([s.state, s.iteration, s.percent], ['finished', 6, 100]);
  });

  it('refuses a second start, stops with a checkpoint, and "start" resumes where it stopped', async () => {
    const dir = newDir();
    await helper.load([trainNode, catchNode], flow({ maxIter: 400, checkpointEvery: 0, evalEvery: 0, synVal: 0, checkpointDir: dir }));
    const t = helper.getNode('t');
    const events = helper.getNode('events');
    const firstProgress = nextMessage<Msg>(helper.getNode('progress'));
    t.receive({ payload: 'start' });
    await firstProgress;
    // The event loop stays free while the worker trains: a status request is answered mid-run.
    const st = until(events, 'status');
    t.receive({ topic: 'status' });
    assert.equal(((await st).payload as { state: string }).state, 'running');
    const caught = nextMessage<Msg>(helper.getNode('caught'));
    t.receive({ payload: 'start' });
    const err = (await caught).error as { message: string };
    assert.match(err.message, /"start" refused: training is already running \(iteration \d+\/400\); send "stop" first/);
    const stopped = until(events, 'done');
    const ckpt = until(events, 'checkpoint');
    t.receive({ payload: { command: 'stop' } });
    const c = (await ckpt).payload as { iteration: number; reason: string; dir: string };
    const d = (await stopped).payload as { reason: string; iteration: number };
    assert.equal(c.reason, 'stop');
    assert.equal(d.reason, 'stopped');
    assert.equal(c.iteration, d.iteration);
    assert.ok(d.iteration > 0 && d.iteration < 400);
    const started = until(events, 'started');
    t.receive({ payload: 'start', options: { maxIter: d.iteration + 2 } });
    const s = (await started).payload as { iteration: number; resumedFrom: string };
    assert.equal(s.iteration, d.iteration);
    assert.equal(s.resumedFrom, c.dir);
    const fin = (await until(events, 'done')).payload as { reason: string; iteration: number };
    assert.deepEqual([fin.reason, fin.iteration], ['finished', d.iteration + 2]);
  });

  it('pause holds the run between steps and resume lets it go on', async () => {
    await helper.load([trainNode, catchNode], flow({ maxIter: 400, checkpointEvery: 0, evalEvery: 0, synVal: 0, checkpointDir: newDir() }));
    const t = helper.getNode('t');
    const progress = helper.getNode('progress');
    const got: number[] = [];
    progress.on('input', (m) => got.push(((m as Msg).payload as { iteration: number }).iteration));
    const first = nextMessage(progress);
    t.receive({ payload: 'start' });
    await first;
    t.receive({ payload: 'pause' });
    // Wait until the worker reports the pause, then check nothing moves.
    for (let i = 0; i < 600; i++) {
      const st = until(helper.getNode('events'), 'status');
      t.receive({ payload: 'status' });
      if (((await st).payload as { state: string }).state === 'paused') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const at = got.length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(got.length, at, 'progress while paused');
    const caught = nextMessage<Msg>(helper.getNode('caught'));
    t.receive({ payload: 'pause' });
    assert.match(((await caught).error as { message: string }).message, /"pause" refused: training is paused, not running/);
    const more = nextMessage(progress);
    t.receive({ payload: 'resume' });
    await more;
    assert.ok(got.length > at);
    const done = until(helper.getNode('events'), 'done');
    t.receive({ payload: 'stop' });
    assert.equal(((await done).payload as { reason: string }).reason, 'stopped');
  });

  it('publishes checkpoints into a running deeplab-infer node without a redeploy', async () => {
    const dir = newDir();
    const model = { id: 'm1', type: 'deeplab-model', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.0625, classPreset: 'custom', customClasses: 'bg, disc, square' };
    await helper.load([trainNode, catchNode, modelNode, inferNode], flow({ model: 'm1', maxIter: 2, checkpointEvery: 2, evalEvery: 0, checkpointDir: dir }, [
      model,
      { id: 'inf', type: 'deeplab-infer', model: 'm1', resize: 'none', wires: [['logits']] },
      { id: 'logits', type: 'helper' },
    ]));
    const image: RawImage = syntheticSample(5, { width: 33, height: 33, classes: 3 }).image;
    const before = nextMessage<Msg>(helper.getNode('logits'));
    helper.getNode('inf').receive({ payload: image });
    const l0 = (await before).payload as ScoreMap;
    const ckpt = until(helper.getNode('events'), 'checkpoint');
    helper.getNode('t').receive({ payload: 'start' });
    const c = (await ckpt).payload as { published: number; publishedDir: string };
    assert.equal(c.published, 1);
    const after = nextMessage<Msg>(helper.getNode('logits'));
    helper.getNode('inf').receive({ payload: image });
    const l1 = (await after).payload as ScoreMap;
    // The same image through a model loaded from the published folder, computed here.
    await loadModel('expected', normalizeModelConfig({ spec: { variant: 'v3plus', classes: 3, width: 0.0625 }, weights: { source: 'dir', path: c.publishedDir } }));
    try {
      const [expected] = await inferMaps({ key: 'expected', image: { ...image, data: new Uint8Array(image.data) }, options: { resize: 'none' } });
      assert.deepEqual([l1.width, l1.height, l1.classes], [expected.width, expected.height, 3]);
      let diff0 = 0;
      let diff1 = 0;
      const [v0, v1] = [scoreValues(l0)!, scoreValues(l1)!];
      for (let i = 0; i < expected.data.length; i++) {
        diff0 = Math.max(diff0, Math.abs(v0[i] - expected.data[i]));
        diff1 = Math.max(diff1, Math.abs(v1[i] - expected.data[i]));
      }
      assert.ok(diff0 > 1e-4, 'the weights did not change');
      assert.ok(diff1 < 1e-5, `the running node does not use the published weights (max difference ${diff1})`);
    } finally {
      await releaseModel('expected');
    }
  });

  it('"learn CRF next" sends the best CRF parameters as msg.crf for dense-crf', async () => {
    await helper.load([trainNode, catchNode], flow({ maxIter: 2, evalEvery: 0, learnCrf: true, crfImages: 1, checkpointDir: newDir() }));
    const crf = until(helper.getNode('events'), 'crf');
    helper.getNode('t').receive({ payload: 'start' });
    const m = await crf;
    const best = m.crf as Record<string, number>;
    // dense-crf applies msg.crf over its parameters: every key must be accepted.
    assert.deepEqual(applyCrfOverride(crfPreset('deeplab-v2'), best), best);
    assert.ok(best.w1 >= 3 && best.w1 <= 6 && best.thetaAlpha >= 30 && best.thetaAlpha <= 100 && best.thetaBeta >= 3 && best.thetaBeta <= 6);
    const r = m.payload as { trials: unknown[]; images: number; bestMeanIoU: number };
    assert.equal(r.trials.length, 4 * 8 * 4);
    assert.equal(r.images, 1);
  });

  it('bad control messages and options reach Catch; a bare node trains the demo with defaults', async () => {
    const userDir = newDir();
    const settable = helper as unknown as { settings(s: Record<string, unknown>): void };
    settable.settings({ userDir });
    await helper.load([trainNode, catchNode], [
      { id: 't', type: 'deeplab-train', wires: [['progress'], ['events']] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'progress', type: 'helper' }, { id: 'events', type: 'helper' }, { id: 'caught', type: 'helper' },
    ]);
    const t = helper.getNode('t');
    let caught = nextMessage<Msg>(helper.getNode('caught'));
    t.receive({ payload: 'go faster' });
    assert.match(((await caught).error as { message: string }).message, /unknown control message/);
    caught = nextMessage<Msg>(helper.getNode('caught'));
    t.receive({ payload: 'start', options: { learningRate: 1 } });
    assert.match(((await caught).error as { message: string }).message, /unknown option "learningRate"/);
    caught = nextMessage<Msg>(helper.getNode('caught'));
    t.receive({ payload: 'resume' });
    assert.match(((await caught).error as { message: string }).message, /"resume" refused/);
    // Defaults only: the demo (97 px shapes, 4 classes), checkpoints in <userDir>/deeplab-training/<node id>.
    const started = until(helper.getNode('events'), 'started');
    t.receive({ payload: { command: 'start', maxIter: 1, publish: false } });
    const s = (await started).payload as { iteration: number; maxIter: number; params: number; checkpointDir: string };
    settable.settings({});
    assert.equal(s.maxIter, 1);
    assert.ok(s.params > 0);
    assert.equal(s.checkpointDir, path.join(userDir, 'deeplab-training', 't'));
    const done = (await until(helper.getNode('events'), 'done')).payload as { reason: string };
    assert.equal(done.reason, 'finished');
    assert.ok(fs.existsSync(path.join(s.checkpointDir, 'ckpt-00000001', 'deeplab.json')));
  });
});
