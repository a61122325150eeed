import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isLabelMap } from '../../lib/contract';
import { runOrder } from '../../lib/data/dataset';
import { decodeLabelImage } from '../../lib/data/labels';
import type { MetricsReport } from '../../lib/metrics';
import datasetNode = require('../../nodes/dataset/dataset');
import evalNode = require('../../nodes/miou-eval/miou-eval');
import { HANG_MS, helper, TestNode } from '../helpers/red';
import { SHARED_DATA, sharedData, VOC_SAMPLES } from '../helpers/shared-data';


const SHARED = SHARED_DATA;
const VOC = VOC_SAMPLES;
let IDS: string[] = [];

type Msg = Record<string, unknown>;
const nextError = (n: TestNode): Promise<string> =>
  new Promise((resolve) => n.once<{ firstArg: unknown }>('call:error', (c) => resolve(String(c.firstArg))));
/** Collects messages arriving at a helper node. */
function collect(n: TestNode): Msg[] {
  const got: Msg[] = [];
  n.on('input', (m: Msg) => {
    got.push(m);
  });
  return got;
}
const waitFor = async (cond: () => boolean, what: string, ms = HANG_MS) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};
const settle = () => new Promise((r) => setTimeout(r, 50));

describe('nodes/dataset', function () {
  before(() => {
    IDS = fs.readFileSync(path.join(sharedData('voc-samples'), 'ImageSets/Segmentation/val.txt'), 'utf8').split(/\s+/).filter(Boolean);
  });
  beforeEach(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });

  const dsFlow = (extra: Msg = {}) => [
    { id: 'd', type: 'deeplab-dataset', root: SHARED, dir: 'voc-samples', ...extra, wires: [['s'], ['c']] }, { id: 's', type: 'helper' }, { id: 'c', type: 'helper' },
  ];

  it('sends the 14 VOC samples a window at a time, the next on each message back, then complete', async () => {
    await helper.load(datasetNode, dsFlow({ window: 2 }));
    const d = helper.getNode('d');
    const samples = collect(helper.getNode('s'));
    const control = collect(helper.getNode('c'));
    d.receive({ payload: 'start' });
    await waitFor(() => samples.length === 2, 'the first window');
    await settle();
    assert.equal(samples.length, 2, 'no more than the window without feedback');
    assert.deepEqual(control.map((m) => m.topic), ['reset']);
    const first = samples[0];
    assert.equal(first.topic, IDS[0]);
    assert.equal(first.id, IDS[0]);
    assert.deepEqual([first.index, first.count], [0, 14]);
    assert.ok(Buffer.isBuffer(first.payload) && (first.payload as Buffer)[0] === 0xff, 'JPEG bytes');
    assert.deepEqual(first.groundTruth, fs.readFileSync(path.join(VOC, 'SegmentationClass', `${IDS[0]}.png`)));
    for (let k = 0; k < 14; k++) {
      await waitFor(() => samples.length > k, `sample ${k}`);
      d.receive({ ...samples[k], payload: { figures: true } });
    }
    await waitFor(() => control.length === 2, 'complete');
    assert.deepEqual(samples.map((m) => m.id), IDS);
    assert.equal(control[1].complete, true);
    assert.equal((control[1].payload as { count: number }).count, 14);
  });

  it('shuffles by seed, limits, decodes masks, paces on a timer, and restarts', async () => {
    await helper.load(datasetNode, dsFlow({ shuffle: true, seed: 7, limit: 4, decodeMask: true, pacing: 'interval', interval: 5 }));
    const d = helper.getNode('d');
    const samples = collect(helper.getNode('s'));
    const control = collect(helper.getNode('c'));
    d.receive({ topic: 'start' });
    await waitFor(() => control.length === 2, 'complete');
    assert.deepEqual(samples.map((m) => m.id), runOrder(IDS, { shuffle: true, seed: 7, limit: 4 }));
    assert.ok(isLabelMap(samples[0].groundTruth));
    d.receive({ payload: 'restart' });
    await waitFor(() => control.length === 4, 'second complete');
    assert.equal(samples.length, 8);
    assert.deepEqual(samples.slice(4).map((m) => m.id), samples.slice(0, 4).map((m) => m.id), 'same seed, same order');
  });

  it('stops on command and ignores messages of an older run', async () => {
    await helper.load(datasetNode, dsFlow());
    const d = helper.getNode('d');
    const samples = collect(helper.getNode('s'));
    d.receive({ payload: 'start' });
    await waitFor(() => samples.length === 1, 'first sample');
    const old = samples[0];
    d.receive({ payload: 'restart' });
    await waitFor(() => samples.length === 2, 'first sample of run 2');
    d.receive({ ...old, payload: {} }); // from run 1: must not free a slot
    await settle();
    assert.equal(samples.length, 2);
    d.receive({ ...samples[1], payload: {} });
    await waitFor(() => samples.length === 3, 'second sample of run 2');
    d.receive({ payload: 'stop' });
    d.receive({ ...samples[2], payload: {} });
    await settle();
    assert.equal(samples.length, 3, 'nothing after stop');
  });

  it('refuses a folder outside its root and reports a missing data set', async () => {
    const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-dsn-')));
    try {
      fs.symlinkSync(VOC, path.join(tmp, 'link'));
      await helper.load(datasetNode, [
        { id: 'a', type: 'deeplab-dataset', root: tmp, dir: '../', wires: [[], []] },
        { id: 'b', type: 'deeplab-dataset', root: tmp, dir: 'link', wires: [[], []] },
        { id: 'n', type: 'deeplab-dataset', root: tmp, dir: 'nope', wires: [[], []] },
        { id: 'x', type: 'deeplab-dataset', wires: [[], []] },
      ]);
      let e = nextError(helper.getNode('a'));
      helper.getNode('a').receive({ payload: 'start' });
      assert.match(await e, /outside the allowed root/);
      e = nextError(helper.getNode('b'));
      helper.getNode('b').receive({ payload: 'start' });
      assert.match(await e, /through a symbolic link/);
      e = nextError(helper.getNode('n'));
      helper.getNode('n').receive({ payload: 'start' });
      assert.match(await e, /does not exist/);
      // Type and wires only: the root is the user directory (or cwd), which holds no VOC split.
      e = nextError(helper.getNode('x'));
      helper.getNode('x').receive({ payload: 'start' });
      assert.ok((await e).length > 0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('reports a sample it cannot read (a file linked out of the root) and goes on to complete', async () => {
    const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-dsn-')));
    try {
      const d = path.join(tmp, 'root', 'voc');
      for (const sub of ['JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation']) fs.mkdirSync(path.join(d, sub), { recursive: true });
      for (const id of IDS.slice(0, 3)) {
        fs.copyFileSync(path.join(VOC, 'SegmentationClass', `${id}.png`), path.join(d, 'SegmentationClass', `${id}.png`));
        if (id !== IDS[1]) fs.copyFileSync(path.join(VOC, 'JPEGImages', `${id}.jpg`), path.join(d, 'JPEGImages', `${id}.jpg`));
      }
      fs.copyFileSync(path.join(VOC, 'JPEGImages', `${IDS[1]}.jpg`), path.join(tmp, 'outside.jpg'));
      fs.symlinkSync(path.join(tmp, 'outside.jpg'), path.join(d, 'JPEGImages', `${IDS[1]}.jpg`));
      fs.writeFileSync(path.join(d, 'ImageSets/Segmentation/val.txt'), IDS.slice(0, 3).join('\n'));
      await helper.load(datasetNode, [
        { id: 'd', type: 'deeplab-dataset', root: path.join(tmp, 'root'), dir: 'voc', wires: [['s'], ['c']] }, { id: 's', type: 'helper' }, { id: 'c', type: 'helper' },
      ]);
      const ds = helper.getNode('d');
      const samples = collect(helper.getNode('s'));
      const control = collect(helper.getNode('c'));
      const err = nextError(ds);
      ds.receive({ payload: 'start' });
      await waitFor(() => samples.length === 1, 'first sample');
      ds.receive({ ...samples[0], payload: {} });
      assert.match(await err, new RegExp(`sample ${IDS[1]}: .*through a symbolic link`));
      await waitFor(() => samples.length === 2, 'third sample');
      ds.receive({ ...samples[1], payload: {} });
      await waitFor(() => control.length === 2, 'complete');
      assert.deepEqual(samples.map((m) => m.id), [IDS[0], IDS[2]]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('drives miou-eval end to end: feedback pacing, reset, per-image figures and the final report', async () => {
    await helper.load([datasetNode, evalNode], [
      { id: 'd', type: 'deeplab-dataset', root: SHARED, dir: 'voc-samples', limit: 5, window: 2, wires: [['s'], ['e']] },
      { id: 'e', type: 'miou-eval', wires: [['d', 'per'], ['rep']] },
      { id: 's', type: 'helper' }, { id: 'per', type: 'helper' }, { id: 'rep', type: 'helper' },
    ]);
    const e = helper.getNode('e');
    // A perfect "model": the prediction is the decoded ground truth (void as background).
    helper.getNode('s').on('input', async (m: Msg) => {
      const gt = await decodeLabelImage(m.groundTruth as Buffer);
      e.receive({ ...m, payload: { ...gt, data: gt.data.map((v) => (v === 255 ? 0 : v)) } });
    });
    const per = collect(helper.getNode('per'));
    const rep = collect(helper.getNode('rep'));
    helper.getNode('d').receive({ payload: 'start' });
    await waitFor(() => rep.length === 1, 'final report');
    assert.equal(per.length, 5);
    const r = rep[0].payload as MetricsReport;
    assert.equal(rep[0].complete, true);
    assert.equal(r.images, 5);
    assert.equal(r.pixelAccuracy, 1);
    assert.equal(r.meanIoUPresent, 1);
  });
});
