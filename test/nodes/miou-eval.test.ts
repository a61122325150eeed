import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { LabelMap, ScoreMap } from '../../lib/contract';
import { decodeLabelImage } from '../../lib/data/labels';
import type { MetricsReport } from '../../lib/metrics';
import evalNode = require('../../nodes/miou-eval/miou-eval');
import { helper, TestNode } from '../helpers/red';
import { sharedData } from '../helpers/shared-data';



type Msg = Record<string, unknown>;
const nextMsg = (n: TestNode): Promise<Msg> => new Promise((resolve) => n.once('input', (m: Msg) => resolve(m)));
const nextError = (n: TestNode): Promise<string> =>
  new Promise((resolve) => n.once<{ firstArg: unknown }>('call:error', (c) => resolve(String(c.firstArg))));
const lm = (w: number, h: number, v: number[]): LabelMap => ({ width: w, height: h, data: Uint8Array.from(v), ignoreIndex: 255 });
const close = (a: unknown, b: number) => assert.ok(typeof a === 'number' && Math.abs(a - b) < 1e-12, `${a} != ${b}`);

const flow = (extra: Msg = {}) => [
  { id: 'e', type: 'miou-eval', ...extra, wires: [['per'], ['rep']] }, { id: 'per', type: 'helper' }, { id: 'rep', type: 'helper' },
];

describe('nodes/miou-eval', () => {
  beforeEach(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });

  it('accumulates hand-computed matrices over messages and reports on request and on complete', async () => {
    await helper.load(evalNode, flow({ classes: 3, labels: 'custom', customNames: 'a, b, c' }));
    const e = helper.getNode('e');
    const per = helper.getNode('per');
    const rep = helper.getNode('rep');
    // Image 1: the matrix [[1,1,0],[0,1,1],[0,0,1]] (see test/lib/metrics); image 2 all right: [[0,0,0],[0,2,0],[0,0,0]].
    let p = nextMsg(per);
    e.receive({ payload: lm(3, 2, [0, 1, 1, 2, 2, 0]), groundTruth: lm(3, 2, [0, 0, 1, 1, 2, 255]) });
    let m = (await p).payload as { image: { meanIoU: number; pixelAccuracy: number }; running: { images: number; meanIoU: number } };
    close(m.image.meanIoU, 4 / 9);
    close(m.image.pixelAccuracy, 3 / 5);
    p = nextMsg(per);
    e.receive({ payload: lm(2, 1, [1, 1]), groundTruth: lm(2, 1, [1, 1]) });
    m = (await p).payload as typeof m;
    assert.equal(m.running.images, 2);
    // Totals: [[1,1,0],[0,3,1],[0,0,1]] -> IoU 1/2, 3/5, 1/2.
    close(m.running.meanIoU, (1 / 2 + 3 / 5 + 1 / 2) / 3);
    let r = nextMsg(rep);
    e.receive({ payload: 'report' });
    let report = await r;
    const rp = report.payload as MetricsReport;
    assert.deepEqual(rp.confusion, [[1, 1, 0], [0, 3, 1], [0, 0, 1]]);
    assert.equal(rp.perClass[1].name, 'b');
    assert.equal(report.reason, 'report');
    assert.equal((report.table as { class: string; iou: number }[])[1].iou, 60);
    assert.equal((await sharp(report.heatmap as Buffer).metadata()).format, 'png');
    r = nextMsg(rep);
    e.receive({ complete: true, payload: { count: 2 } });
    report = await r;
    assert.equal(report.complete, true);
    close((report.payload as MetricsReport).meanIoU, (1 / 2 + 3 / 5 + 1 / 2) / 3);
    e.receive({ topic: 'reset' });
    r = nextMsg(rep);
    e.receive({ topic: 'report' });
    assert.equal(((await r).payload as MetricsReport).images, 0);
  });

  it('reads a real palette PNG ground truth by index; the VOC and present rules differ as defined', async function () {
    const file = path.join(sharedData('voc-samples/SegmentationClass'), 'vainf_294.png');
    const buf = fs.readFileSync(file);
    const gt = await decodeLabelImage(buf);
    // A perfect prediction of car (7) + person (15) + background: IoU 1 for 3 of 21 classes.
    await helper.load(evalNode, [...flow(), { id: 'e2', type: 'miou-eval', meanRule: 'present', heatmap: false, wires: [[], ['rep2']] }, { id: 'rep2', type: 'helper' }]);
    for (const id of ['e', 'e2']) helper.getNode(id).receive({ payload: { ...gt, data: gt.data.map((v) => (v === 255 ? 0 : v)) }, groundTruth: buf });
    const r1 = nextMsg(helper.getNode('rep'));
    const r2 = nextMsg(helper.getNode('rep2'));
    helper.getNode('e').receive({ payload: 'report' });
    helper.getNode('e2').receive({ payload: 'report' });
    const voc = (await r1).payload as MetricsReport;
    const present = (await r2) as Msg;
    close(voc.meanIoU, 3 / 21);
    close((present.payload as MetricsReport).meanIoU, 1);
    assert.equal(present.heatmap, undefined);
    assert.equal(voc.perClass[15].name, 'person');
    close(voc.pixelAccuracy, 1);
    assert.ok(voc.ignoredPixels > 1000);
  });

  it('takes the argmax of a ScoreMap prediction', async () => {
    await helper.load(evalNode, flow({ classes: 2 }));
    const p = nextMsg(helper.getNode('per'));
    const scores: ScoreMap = { width: 2, height: 1, classes: 2, data: Float32Array.from([0.9, 0.1, 0.2, 0.8]), kind: 'probs', stride: 1 };
    helper.getNode('e').receive({ payload: scores, groundTruth: lm(2, 1, [0, 0]) });
    close(((await p).payload as { image: { pixelAccuracy: number } }).image.pixelAccuracy, 1 / 2);
  });

  it('refuses a size mismatch, out-of-range labels and a missing ground truth, and keeps counting', async () => {
    await helper.load(evalNode, flow({ classes: 3 }));
    const e = helper.getNode('e');
    let err = nextError(e);
    e.receive({ payload: lm(2, 2, [0, 0, 0, 0]), groundTruth: lm(4, 1, [0, 0, 0, 0]) });
    assert.match(await err, /prediction is 2x2 but the ground truth is 4x1/);
    err = nextError(e);
    e.receive({ payload: lm(1, 1, [0]), groundTruth: lm(1, 1, [7]) });
    assert.match(await err, /ground truth holds label 7/);
    err = nextError(e);
    e.receive({ payload: lm(1, 1, [0]) });
    assert.match(await err, /msg.groundTruth is missing/);
    err = nextError(e);
    e.receive({ payload: lm(1, 1, [0]), groundTruth: Buffer.from('not a png') });
    assert.match(await err, /msg.groundTruth: not a mask image/);
    err = nextError(e);
    e.receive({ payload: 42, groundTruth: lm(1, 1, [0]) });
    assert.match(await err, /expected the prediction as a LabelMap/);
    const p = nextMsg(helper.getNode('per'));
    e.receive({ payload: lm(1, 1, [1]), groundTruth: lm(1, 1, [1]) });
    assert.equal(((await p).payload as { running: { images: number } }).running.images, 1);
  });
});
