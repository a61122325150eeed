/**
 * The message contract in real flows: RawImage / LabelMap / ScoreMap objects built in a Function
 * node's sandbox (another realm) are accepted; every output carries its bulk data as Buffers,
 * which Node-RED's clone keeps intact; a 4000x3000 photo through upsample -> dense-crf stays in
 * a bounded memory; a refusal over the memory budget reaches Catch with the original message.
 */
import { strict as assert } from 'assert';
import * as zlib from 'zlib';
import { LabelMap, RawImage, ScoreMap, scoreValues } from '../../lib/contract';
import { closeCrfHelper } from '../../lib/crf/parallel';
import { interpolatedLabels } from '../../lib/ops/score-map';
import { OVER_BUDGET_CODE } from '../../lib/runtime/memory-budget';
import { catchNode, helper, messages, nextMessage, statusLog } from '../helpers/red';

const functionNode = require('@node-red/nodes/core/function/10-function.js');
const modelNode = require('../../nodes/deeplab-model/deeplab-model');
const inferNode = require('../../nodes/deeplab-infer/deeplab-infer');
const fusionNode = require('../../nodes/msc-fusion/msc-fusion');
const upsampleNode = require('../../nodes/upsample/upsample');
const crfNode = require('../../nodes/dense-crf/dense-crf');
const renderNode = require('../../nodes/seg-render/seg-render');
const evalNode = require('../../nodes/miou-eval/miou-eval');
const ALL = [functionNode, modelNode, inferNode, fusionNode, upsampleNode, crfNode, renderNode, evalNode, catchNode];

// Node-RED's own clone, as every extra wire of a fan-out runs it.
const { cloneMessage } = (require('@node-red/util') as { util: { cloneMessage: <T>(m: T) => T } }).util;

type Msg = Record<string, unknown>;

/** Every typed array or ArrayBuffer anywhere in a message that is not a Buffer (their paths). */
function nonBufferViews(v: unknown, path = 'msg', out: string[] = []): string[] {
  if (Buffer.isBuffer(v)) return out;
  if (ArrayBuffer.isView(v) || Object.prototype.toString.call(v) === '[object ArrayBuffer]') out.push(path);
  else if (v && typeof v === 'object' && path.split('.').length < 6) {
    for (const [k, x] of Object.entries(v)) if (k !== 'req' && k !== 'res') nonBufferViews(x, `${path}.${k}`, out);
  }
  return out;
}

/** Asserts the structural clone property: Buffers only, and a Node-RED clone with the same values. */
function assertWireSafe(msg: Msg, what: string): void {
  assert.deepEqual(nonBufferViews(msg), [], `${what}: bulk data travels as Buffers`);
  const clone = cloneMessage(msg);
  for (const key of ['payload', 'labels', 'image'] as const) {
    const a = msg[key] as { data?: Buffer } | undefined;
    const b = clone[key] as { data?: Buffer } | undefined;
    if (a?.data) assert.ok(b?.data && a.data.equals(b.data), `${what}: msg.${key} survives the clone`);
  }
}

// A Function node building the contract's objects with its sandbox's own typed arrays.
const BUILD = `
const W = 24, H = 16, C = 3;
const img = new Uint8Array(W * H * 3);
for (let i = 0; i < img.length; i++) img[i] = (i * 37) % 251;
const logits = new Float32Array(4 * 3 * C);
for (let i = 0; i < logits.length; i++) logits[i] = Math.sin(i) * 3;
const gt = new Uint8Array(W * H);
for (let i = 0; i < gt.length; i++) gt[i] = (i % W) < 12 ? 0 : 1;
msg.image = { width: W, height: H, channels: 3, data: img };
msg.payload = { width: 4, height: 3, classes: C, data: logits, kind: 'logits', stride: 8 };
msg.labels = { width: W, height: H, data: gt.slice(), ignoreIndex: 255 };
msg.groundTruth = { width: W, height: H, data: gt, ignoreIndex: 255 };
msg.bytes = { width: 4, height: 3, classes: C, data: new Uint8Array(logits.buffer), kind: 'logits', stride: 8 };
return msg;`;

/** A PNG that says 6000x6000 in its header and holds almost nothing: decoding it would fail as truncated. */
function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(typed));
    return Buffer.concat([len, typed, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

describe('nodes: the message contract on real wires', function () {
  this.timeout(600_000);
  beforeEach(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });
  after(() => closeCrfHelper());

  it('accepts RawImage, LabelMap and ScoreMap built with new Uint8Array / Float32Array in a Function node', async () => {
    await helper.load(ALL, [
      { id: 'fn', type: 'function', func: BUILD, outputs: 1, wires: [['raw', 'inf', 'fuse', 'up', 'crf', 'render', 'evalL', 'evalS', 'upBytes']] },
      { id: 'm', type: 'deeplab-model', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' },
      { id: 'inf', type: 'deeplab-infer', model: 'm', property: 'image', output: 'logits', size: 65, wires: [['o-inf']] },
      { id: 'fuse', type: 'msc-fusion', base: 'image', wires: [['o-fuse']] },
      { id: 'up', type: 'deeplab-upsample', result: 'both', wires: [['o-up']] },
      { id: 'upBytes', type: 'deeplab-upsample', property: 'bytes', result: 'labels', wires: [['o-upBytes']] },
      { id: 'crf', type: 'dense-crf', wires: [['o-crf']] },
      { id: 'render', type: 'seg-render', property: 'labels', wires: [['o-render']] },
      { id: 'evalL', type: 'miou-eval', property: 'labels', classes: 3, labels: 'custom', customNames: 'a, b, c', wires: [['o-evalL'], []] },
      { id: 'evalS', type: 'miou-eval', classes: 3, labels: 'custom', customNames: 'a, b, c', wires: [['o-evalS'], []] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      ...['raw', 'o-inf', 'o-fuse', 'o-up', 'o-upBytes', 'o-crf', 'o-render', 'o-evalL', 'o-evalS', 'caught'].map((id) => ({ id, type: 'helper' })),
    ]);
    const errors: string[] = [];
    helper.getNode('caught').on('input', (m) => errors.push(String(((m as Msg).error as { message: string }).message)));
    const outs = ['raw', 'o-inf', 'o-fuse', 'o-up', 'o-upBytes', 'o-crf', 'o-render', 'o-evalL', 'o-evalS'];
    const got = outs.map((id) => nextMessage<Msg>(helper.getNode(id)));
    helper.getNode('fn').receive({ topic: 'sandbox' });
    const [raw, inf, fuse, up, upBytes, crf, render, evalL, evalS] = await Promise.all(got);
    assert.deepEqual(errors, []);

    const sandboxImage = raw.image as RawImage;
    assert.equal(sandboxImage.data instanceof Uint8Array, false, 'the Function node really built them in another realm');
    assert.ok(ArrayBuffer.isView(sandboxImage.data));

    const logits = inf.logits as ScoreMap;
    assert.deepEqual([logits.width, logits.classes], [17, 21], 'deeplab-infer read the sandbox RawImage (24 pixels wide -> 65 -> 17 cells)');
    assert.ok(Buffer.isBuffer((inf.image as RawImage).data));
    assert.deepEqual([...(inf.image as RawImage).data], [...sandboxImage.data]);

    const fused = fuse.payload as ScoreMap;
    assert.deepEqual([fused.width, fused.height, fused.kind], [24, 16, 'probs']);
    const probs = up.payload as ScoreMap;
    assert.deepEqual([probs.width, probs.height, probs.kind], [24, 16, 'probs']);
    const sandboxMap = { ...(raw.payload as ScoreMap), data: scoreValues(raw.payload as ScoreMap)! };
    assert.deepEqual([...(up.labels as LabelMap).data], [...interpolatedLabels(sandboxMap, 24, 16, true).data]);
    assert.deepEqual([...(upBytes.bytes as LabelMap).data], [...(up.labels as LabelMap).data], 'float32 bytes in a sandbox Uint8Array read the same');
    assert.deepEqual([(crf.payload as LabelMap).width, (crf.payload as LabelMap).height], [24, 16], 'dense-crf resized the coarse sandbox map itself');
    assert.ok(Buffer.isBuffer(render.payload));
    const perfect = (evalL.payload as { image: { pixelAccuracy: number } }).image;
    assert.equal(perfect.pixelAccuracy, 1, 'the sandbox labels against the sandbox ground truth');
    assert.ok(typeof (evalS.payload as { image: { pixelAccuracy: number } }).image.pixelAccuracy === 'number', 'a coarse sandbox ScoreMap, interpolated to the ground truth');

    // What each node wrote (the other sandbox fields pass on as they came).
    const written: [string, Msg, string[]][] = [
      ['deeplab-infer', inf, ['logits', 'image']], ['msc-fusion', fuse, ['payload', 'image']], ['upsample', up, ['payload', 'labels', 'image']],
      ['dense-crf', crf, ['payload', 'image']], ['seg-render', render, ['payload', 'image']],
    ];
    for (const [what, m, fields] of written) {
      for (const f of fields) assert.deepEqual(nonBufferViews(m[f], `msg.${f}`), [], `${what}: msg.${f} holds Buffers (msg.image passed on as one)`);
    }
  });

  it('every output of the pipeline holds Buffers only, and Node-RED\'s clone keeps its values', async () => {
    await helper.load(ALL, [
      { id: 'm', type: 'deeplab-model', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' },
      { id: 'inf', type: 'deeplab-infer', model: 'm', size: 65, scales: '0.5, 1', flip: true, wires: [['fuse', 'o-inf']] },
      { id: 'fuse', type: 'msc-fusion', wires: [['up', 'o-fuse']] },
      { id: 'up', type: 'deeplab-upsample', result: 'probs', wires: [['crf', 'o-up']] },
      { id: 'crf', type: 'dense-crf', result: 'probs', wires: [['render', 'o-crf']] },
      { id: 'render', type: 'seg-render', wires: [['o-render']] },
      ...['o-inf', 'o-fuse', 'o-up', 'o-crf', 'o-render'].map((id) => ({ id, type: 'helper' })),
    ]);
    const names = ['deeplab-infer', 'msc-fusion', 'upsample', 'dense-crf', 'seg-render'];
    const got = ['o-inf', 'o-fuse', 'o-up', 'o-crf', 'o-render'].map((id) => nextMessage<Msg>(helper.getNode(id)));
    const image = { width: 40, height: 30, channels: 3, data: Buffer.alloc(40 * 30 * 3, 90) };
    helper.getNode('inf').receive({ payload: image });
    const outs = await Promise.all(got);
    outs.forEach((m, i) => assertWireSafe(m, names[i]));
    assert.equal((outs[0].payload as ScoreMap[]).length, 4);
    const crf = outs[3];
    assert.deepEqual([(crf.payload as ScoreMap).width, (crf.labels as LabelMap).width], [40, 40]);
  });

  it('a 4000x3000 photo through upsample -> dense-crf (fanned out) stays within a bounded memory', async () => {
    const W = 4000;
    const H = 3000;
    const C = 21;
    // Logits at stride 32 (126x95 cells): smooth class bands; the photo: matching colour bands.
    const cw = 126;
    const ch = 95;
    const logits = new Float32Array(cw * ch * C);
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) for (let c = 0; c < C; c++) logits[(y * cw + x) * C + c] = c === Math.floor((x * C) / cw) ? 4 : Math.sin(x + c + y);
    const map = { width: cw, height: ch, classes: C, data: Buffer.from(logits.buffer), kind: 'logits', stride: 32 };
    const data = Buffer.alloc(W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[(y * W + x) * 3] = Math.floor((x * C) / W) * 12;
    await helper.load(ALL, [
      { id: 'up', type: 'deeplab-upsample', memoryBudget: 128, wires: [['crf', 'o-up']] },
      { id: 'crf', type: 'dense-crf', memoryBudget: 256, wires: [['o-crf', 'o-crf2']] },
      ...['o-up', 'o-crf', 'o-crf2'].map((id) => ({ id, type: 'helper' })),
    ]);
    const upLog = statusLog(helper.getNode('up'));
    const crfLog = statusLog(helper.getNode('crf'));
    const got = [nextMessage<Msg>(helper.getNode('o-up')), nextMessage<Msg>(helper.getNode('o-crf')), nextMessage<Msg>(helper.getNode('o-crf2'))];
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    helper.getNode('up').receive({ payload: map, image: { width: W, height: H, channels: 3, data } });
    const [up, crf, crf2] = await Promise.all(got);
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().rss);
    const grewMB = (peak - baseline) / 1024 / 1024;
    // Uncapped: 1 GB of probabilities, its copy in the worker, and a CRF of 12 M pixels (about 11 GB).
    console.log(`      RSS grew by ${grewMB.toFixed(0)} MB (bound 800 MB)`);
    assert.ok(grewMB < 800, `RSS grew by ${grewMB.toFixed(0)} MB (bound 800 MB)`);

    const probs = up.payload as ScoreMap;
    assert.ok(probs.width < W && probs.stride > 1 && probs.width * probs.height * C * 4 * 2 <= 128 * 1024 * 1024, `probabilities capped: ${probs.width}x${probs.height}`);
    assert.ok(upLog.some((s) => s.fill === 'yellow' && /capped/.test(s.text ?? '')), JSON.stringify(upLog));
    const labels = crf.payload as LabelMap;
    assert.deepEqual([labels.width, labels.height], [W, H]);
    assert.ok(Buffer.isBuffer(labels.data) && labels.data.length === W * H);
    assert.equal(crf2.payload === crf.payload, false, 'the fan-out cloned the message...');
    assert.equal((crf2.payload as LabelMap).data.buffer, labels.data.buffer, '...sharing the labels\' memory');
    assert.equal(crf.probabilities, undefined);
    assert.ok(crfLog.some((s) => s.fill === 'yellow' && /CRF at \d+x\d+ \(budget 256 MB\)/.test(s.text ?? '')), JSON.stringify(crfLog));
    // The bands survive: the middle of band k is class k.
    for (const k of [0, 7, 20]) {
      const x = Math.floor(((k + 0.5) * W) / C);
      assert.equal(labels.data[1500 * W + x], k, `band ${k}`);
    }
  });

  it('a message over the budget reaches Catch with the original msg and the code DEEPLAB_OVER_BUDGET, before anything is decoded', async () => {
    await helper.load(ALL, [
      { id: 'm', type: 'deeplab-model', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' },
      { id: 'inf', type: 'deeplab-infer', model: 'm', wires: [['o']] },
      { id: 'render', type: 'seg-render', memoryBudget: 1, wires: [['o']] },
      { id: 'up', type: 'deeplab-upsample', result: 'labels', memoryBudget: '0.5', wires: [['o']] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'o', type: 'helper' }, { id: 'caught', type: 'helper' },
    ]);
    const labels = { width: 1000, height: 1000, data: Buffer.alloc(1000 * 1000), ignoreIndex: 255 };
    const map = { width: 9, height: 9, classes: 3, data: Buffer.alloc(243 * 4), kind: 'logits', stride: 8 };
    const memoryOf = (v: unknown) => (Buffer.isBuffer(v) ? v : (v as { data: Buffer }).data).buffer;
    const big = pngHeaderOnly(6000, 6000);
    const cases: [string, Msg, RegExp][] = [
      // 36 MP is under the 40 MP pixel limit; its decode and copies are not under the default 512 MB.
      ['inf', { payload: big }, /decoding and segmenting a 6000x6000 image needs 6\d\d\.\d MB, above this node's memory budget of 512 MB/],
      ['render', { payload: labels }, /rendering 1000x1000 \(overlay\) needs 13.4 MB, above this node's memory budget of 1 MB/],
      ['up', { payload: map, image: { width: 1000, height: 1000, channels: 3, data: Buffer.alloc(3e6) } }, /labels at 1000x1000 .*above this node's memory budget of 512.0 KB/],
    ];
    for (const [id, msg, re] of cases) {
      const log = statusLog(helper.getNode(id));
      const caught = nextMessage<Msg>(helper.getNode('caught'));
      helper.getNode(id).receive({ ...msg, topic: `original ${id}` });
      const c = await caught;
      const error = c.error as { message: string; code?: string };
      assert.match(error.message, re, id);
      assert.equal(error.code, OVER_BUDGET_CODE, id);
      assert.equal(c.topic, `original ${id}`, 'the Catch node gets the original message');
      assert.equal(memoryOf(c.payload), memoryOf(msg.payload), 'with its payload (a Buffer: shared by the clone, not copied)');
      assert.equal(log[log.length - 1].fill, 'red', id);
    }
    const ok = messages(helper.getNode('o'), 1);
    helper.getNode('up').receive({ payload: map, image: { width: 30, height: 20, channels: 3, data: Buffer.alloc(1800) } });
    assert.equal(((await ok)[0].payload as LabelMap).width, 30, 'the node keeps working');
  });
});
