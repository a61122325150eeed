import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { catchNode, helper, messages, nextMessage, statusLog } from '../helpers/red';
import { engineMemory } from '../../lib/compute/client';
import { getModelCache } from '../../lib/compute/model-cache';
import { getPool } from '../../lib/compute/pool';
import { isLabelMap, isScoreMap, LabelMap, RawImage, ScoreMap, scoreValues } from '../../lib/contract';
import { CLASS_PRESETS } from '../../lib/data/palette';
import { resolvePreference } from '../../lib/engine/backend';
import { normalizeModelConfig } from '../../lib/models/config';

const modelNode = require('../../nodes/deeplab-model/deeplab-model');
const inferNode = require('../../nodes/deeplab-infer/deeplab-infer');
const upsampleNode = require('../../nodes/upsample/upsample');
const renderNode = require('../../nodes/seg-render/seg-render');
const ALL = [modelNode, inferNode, upsampleNode, renderNode, catchNode];

const MODEL = { id: 'm1', type: 'deeplab-model', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' };

async function photo(width: number, height: number, channels: 1 | 3 | 4 = 3, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * channels);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 251;
  const s = sharp(raw, { raw: { width, height, channels } });
  return format === 'png' ? s.png().toBuffer() : s.jpeg().toBuffer();
}

function pipeline(extra: Record<string, unknown> = {}) {
  return [
    MODEL,
    { id: 'inf', type: 'deeplab-infer', model: 'm1', size: 129, wires: [['up', 'out1']], ...extra },
    { id: 'up', type: 'deeplab-upsample', result: 'both', wires: [['render', 'out2']] },
    { id: 'render', type: 'seg-render', model: 'm1', wires: [['out3']] },
    { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'out1', type: 'helper' }, { id: 'out2', type: 'helper' }, { id: 'out3', type: 'helper' }, { id: 'caught', type: 'helper' },
  ];
}

describe('nodes: deeplab-model, deeplab-infer, upsample, seg-render', function () {
  this.timeout(600_000);
  afterEach(async () => {
    await helper.unload();
  });

  it('runs image -> logits -> upsampled probabilities + labels -> PNG overlay', async () => {
    await helper.load(ALL, pipeline());
    const got1 = nextMessage(helper.getNode('out1'));
    const got2 = nextMessage(helper.getNode('out2'));
    const got3 = nextMessage(helper.getNode('out3'));
    helper.getNode('inf').receive({ payload: await photo(160, 120) });
    const m1 = await got1;
    const logits = m1.payload as ScoreMap;
    assert.ok(isScoreMap(logits));
    assert.equal(logits.kind, 'logits');
    assert.deepEqual([logits.width, logits.height, logits.classes], [33, 25, 21]); // 129x97 input at stride 4
    const image = m1.image as RawImage;
    assert.deepEqual([image.width, image.height], [160, 120]);
    const m2 = await got2;
    const probs = m2.payload as ScoreMap;
    assert.deepEqual([probs.width, probs.height, probs.kind], [160, 120, 'probs']);
    assert.ok(Buffer.isBuffer(logits.data) && Buffer.isBuffer(probs.data) && Buffer.isBuffer(image.data), 'bulk data travels as Buffers');
    let sum = 0;
    for (let c = 0; c < 21; c++) sum += scoreValues(probs)![c];
    assert.ok(Math.abs(sum - 1) < 1e-5);
    assert.ok(isLabelMap(m2.labels));
    const m3 = await got3;
    const png = m3.payload as Buffer;
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, 'png');
    const present = m3.classesPresent as { id: number; name: string; color: string }[];
    assert.ok(present.length > 0);
    // Each with its colour in the VOC palette (for a legend drawn next to the picture, as the demo's dashboard does).
    for (const c of present) assert.equal(c.color, `#${CLASS_PRESETS.voc21.colors[c.id].map((v) => v.toString(16).padStart(2, '0')).join('')}`);
    // The overlay at the image's size plus a 160-pixel legend column, one 20-pixel row per class.
    assert.equal(meta.width, 160 + 160);
    assert.equal(meta.height, Math.max(120, 16 + 20 * present.length));
    const labels = m2.labels as LabelMap;
    const ids = new Set(labels.data);
    assert.deepEqual(present.map((p) => p.id), [...ids].sort((a, b) => a - b));
    assert.equal(present[0].name, ['background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'][present[0].id]);
  });

  it('with scales and flip emits an array of maps, one per scale and flip', async () => {
    await helper.load(ALL, pipeline({ scales: '0.5, 1', flip: true }));
    const got = nextMessage(helper.getNode('out1'));
    helper.getNode('inf').receive({ payload: await photo(64, 64, 3, 'jpeg') });
    const maps = (await got).payload as ScoreMap[];
    assert.equal(maps.length, 4);
    assert.deepEqual(maps.map((m) => [m.scale, !!m.flipped]), [[0.5, false], [0.5, true], [1, false], [1, true]]);
  });

  it('converts grayscale and alpha images to RGB', async () => {
    await helper.load(ALL, pipeline());
    const out = helper.getNode('out1');
    const got = messages(out, 2);
    helper.getNode('inf').receive({ payload: await photo(40, 30, 1) });
    helper.getNode('inf').receive({ payload: await photo(40, 30, 4) });
    for (const m of await got) assert.equal((m.image as RawImage).channels, 3);
  });

  const badInputs: [string, () => Promise<unknown>, RegExp][] = [
    ['not an image', async () => Buffer.from('hello world, not an image'), /not an image sharp can read/],
    ['a truncated JPEG', async () => (await photo(64, 64, 3, 'jpeg')).subarray(0, 400), /corrupt or truncated/],
    ['a number', async () => 42, /expected an encoded image Buffer/],
    ['a RawImage with the wrong data length', async () => ({ width: 4, height: 4, channels: 3, data: new Uint8Array(5) }), /RawImage data must be 4x4x3 = 48 bytes/],
    ['an empty Buffer', async () => Buffer.alloc(0), /expected an encoded image Buffer/],
  ];
  for (const [what, make, re] of badInputs) {
    it(`reports ${what} to a Catch node, and keeps working`, async () => {
      await helper.load(ALL, pipeline());
      const caught = nextMessage(helper.getNode('caught'));
      helper.getNode('inf').receive({ payload: await make(), topic: 'bad' });
      const c = await caught;
      assert.match((c.error as { message: string }).message, re);
      assert.equal(c.topic, 'bad', 'the Catch node gets the original message');
      const ok = nextMessage(helper.getNode('out1'));
      helper.getNode('inf').receive({ payload: await photo(20, 20) });
      assert.ok(isScoreMap((await ok).payload));
    });
  }

  it('refuses images above the pixel limit', async () => {
    await helper.load(ALL, pipeline({ maxPixels: 1000 }));
    const caught = nextMessage(helper.getNode('caught'));
    helper.getNode('inf').receive({ payload: await photo(40, 40) });
    assert.match(((await caught).error as { message: string }).message, /1600 pixels, above the limit of 1000/);
  });

  it('upsample and seg-render refuse messages that break the contract', async () => {
    await helper.load(ALL, pipeline());
    const caught = messages(helper.getNode('caught'), 3);
    helper.getNode('up').receive({ payload: { width: 2, height: 2, classes: 3, data: new Float32Array(5) } });
    helper.getNode('up').receive({ payload: [1, 2] });
    helper.getNode('render').receive({ payload: 'labels?' });
    const errs = (await caught).map((m) => (m.error as { message: string }).message);
    assert.match(errs[0], /ScoreMap data must hold 2x2x3 = 12 float32 scores \(a Float32Array of that length, or 48 bytes\), got a Float32Array of length 5/);
    assert.match(errs[1], /fuse them with msc-fusion/);
    assert.match(errs[2], /expected a LabelMap or a ScoreMap/);
  });

  it('two deeplab-infer nodes on one config load the model once; a redeploy releases it', async () => {
    const flow = [
      MODEL,
      { id: 'a', type: 'deeplab-infer', model: 'm1', size: 65, wires: [['o']] },
      { id: 'b', type: 'deeplab-infer', model: 'm1', size: 65, wires: [['o']] },
      { id: 'o', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const got = messages(helper.getNode('o'), 2);
    helper.getNode('a').receive({ payload: await photo(30, 30) });
    helper.getNode('b').receive({ payload: await photo(30, 30) });
    await got;
    const stats = getModelCache().stats();
    assert.equal(stats.length, 1);
    assert.deepEqual([stats[0].refs, stats[0].loads], [2, 1]);
    await helper.unload();
    assert.equal(getModelCache().stats().length, 0, 'released on close');
  });

  it('works with only its type and wires (default model), and shows the backend in its status', async () => {
    const flow = [{ id: 'bare', type: 'deeplab-infer', wires: [['o']] }, { id: 'o', type: 'helper' }];
    await helper.load(ALL, flow);
    const log = statusLog(helper.getNode('bare'));
    const got = nextMessage(helper.getNode('o'));
    helper.getNode('bare').receive({ payload: await photo(50, 40) });
    const m = await got;
    assert.equal((m.payload as ScoreMap).classes, 21);
    // The engine of the default model (the same cache entry): "onnxruntime (cpu)" or the tfjs backend's name.
    const same = getModelCache().acquire(normalizeModelConfig({ spec: { variant: 'v3plus', classes: 21 }, classNames: [...CLASS_PRESETS.voc21.names] }));
    const engine = (await same.ready()).backend;
    await same.release();
    assert.ok(log.some((s) => s.text?.includes(`ready · ${engine}`)), JSON.stringify(log));
    const forced = resolvePreference();
    if (forced === 'wasm') assert.equal(engine, 'wasm');
    if (forced.startsWith('onnxruntime')) assert.match(engine, /^onnxruntime \(/);
  });

  it('bare upsample and seg-render work with their defaults', async () => {
    const flow = [
      { id: 'u', type: 'deeplab-upsample', wires: [['r', 'o1']] }, { id: 'r', type: 'seg-render', wires: [['o2']] },
      { id: 'o1', type: 'helper' }, { id: 'o2', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const g1 = nextMessage(helper.getNode('o1'));
    const g2 = nextMessage(helper.getNode('o2'));
    const map: ScoreMap = { width: 2, height: 2, classes: 2, data: Float32Array.from([0, 1, 1, 0, 1, 0, 0, 1]), kind: 'logits', stride: 8 };
    const image: RawImage = { width: 5, height: 5, channels: 3, data: new Uint8Array(75).fill(200) };
    helper.getNode('u').receive({ payload: map, image });
    const up = (await g1).payload as ScoreMap;
    assert.deepEqual([up.width, up.height, up.kind], [5, 5, 'probs']);
    // Align corners: the corner pixels keep the corner cells' probabilities.
    assert.ok(Math.abs(scoreValues(up)![1] - 1 / (1 + Math.exp(-1))) < 1e-6);
    const png = (await g2).payload as Buffer;
    assert.equal((await sharp(png).metadata()).format, 'png');
  });

  it('leaks no tensor in the worker over 100 messages through deeplab-infer', async () => {
    await helper.load(ALL, [MODEL, { id: 'inf', type: 'deeplab-infer', model: 'm1', size: 65, queueSize: 100, queuePolicy: 'wait', wires: [['o']] }, { id: 'o', type: 'helper' }]);
    const img = await photo(32, 24);
    const first = nextMessage(helper.getNode('o'));
    helper.getNode('inf').receive({ payload: img });
    await first;
    const slot = getPool().workers.find((w) => w.id === getModelCache().stats()[0].worker)!;
    const before = await engineMemory(slot);
    const got = messages(helper.getNode('o'), 100);
    for (let i = 0; i < 100; i++) helper.getNode('inf').receive({ payload: img });
    await got;
    const after = await engineMemory(slot);
    assert.equal(after.numTensors, before.numTensors);
  });

  it('deeplab-model loads a saved model directory (our format) and infers exactly as the saved model', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-node-weights-'));
    try {
      const source = getModelCache().acquire({ spec: { variant: 'v3plus', width: 0.125, seed: 77, classes: 21 } });
      await getModelCache().save(source, dir);
      const img = await photo(48, 40);
      const raw = { width: 48, height: 40, channels: 3 as const, data: new Uint8Array((await sharp(img).raw().toBuffer())) };
      const [want] = await source.infer(raw, { size: 65 });
      await source.release();
      const flow = [
        { id: 'mdir', type: 'deeplab-model', weightsSource: 'dir', weightsPath: dir },
        { id: 'inf', type: 'deeplab-infer', model: 'mdir', size: 65, wires: [['o']] },
        { id: 'o', type: 'helper' },
      ];
      await helper.load(ALL, flow);
      const got = nextMessage(helper.getNode('o'));
      helper.getNode('inf').receive({ payload: img });
      const map = (await got).payload as ScoreMap;
      assert.deepEqual([map.width, map.height], [want.width, want.height]);
      const values = scoreValues(map)!;
      let diff = 0;
      for (let i = 0; i < values.length; i++) diff = Math.max(diff, Math.abs(values[i] - want.data[i]));
      assert.ok(diff < 1e-5, `max difference ${diff}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing weights directory turns the status red and errors reach the Catch node', async () => {
    const flow = [
      { id: 'mbad', type: 'deeplab-model', weightsSource: 'dir', weightsPath: '/nonexistent/deeplab' },
      { id: 'inf', type: 'deeplab-infer', model: 'mbad', wires: [['o']] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'o', type: 'helper' }, { id: 'caught', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const log = statusLog(helper.getNode('inf'));
    const caught = nextMessage(helper.getNode('caught'));
    helper.getNode('inf').receive({ payload: await photo(20, 20) });
    assert.match(((await caught).error as { message: string }).message, /not a saved DeepLab model directory/);
    assert.ok(log.some((s) => s.fill === 'red'));
  });

  it('an invalid property value marks the node red instead of breaking the flow', async () => {
    const flow = [
      { id: 'r', type: 'seg-render', opacity: 'lots', wires: [['o']] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'o', type: 'helper' }, { id: 'caught', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const caught = nextMessage(helper.getNode('caught'));
    helper.getNode('r').receive({ payload: { width: 1, height: 1, data: new Uint8Array(1), ignoreIndex: 255 } });
    assert.match(((await caught).error as { message: string }).message, /misconfigured/);
  });

  it('a selected model config node that is missing is an error in deeplab-infer and seg-render alike', async () => {
    const flow = [
      { id: 'inf', type: 'deeplab-infer', model: 'gone', wires: [['o']] },
      { id: 'r', type: 'seg-render', model: 'gone', wires: [['o']] },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'o', type: 'helper' }, { id: 'caught', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    for (const id of ['inf', 'r']) {
      const log = statusLog(helper.getNode(id));
      const caught = nextMessage(helper.getNode('caught'));
      helper.getNode(id).receive({ payload: { width: 1, height: 1, data: new Uint8Array(1), ignoreIndex: 255 } });
      await caught;
      const last = helper.getNode(id).status.lastCall?.args[0] as { fill?: string; text?: string } | undefined;
      assert.ok(log.some((s) => s.fill === 'red') || last?.fill === 'red', `${id}: red status`);
    }
  });

  it('takes the resize policy from resizePolicy (the editor reserves `resize`), or a hand-written string `resize`', async () => {
    const flow = [
      MODEL,
      { id: 'a', type: 'deeplab-infer', model: 'm1', size: 129, resizePolicy: 'none', wires: [['o']] },
      { id: 'b', type: 'deeplab-infer', model: 'm1', size: 129, resize: 'none', wires: [['o']] },
      { id: 'c', type: 'deeplab-infer', model: 'm1', size: 129, resize: false, wires: [['o']] },
      { id: 'o', type: 'helper' },
    ];
    await helper.load(ALL, flow);
    const got = messages(helper.getNode('o'), 3);
    for (const id of ['a', 'b', 'c']) helper.getNode(id).receive({ payload: await photo(40, 40), topic: id });
    const sizes = Object.fromEntries((await got).map((m) => [m.topic, (m.payload as ScoreMap).width]));
    // none: the 40-pixel image itself (stride 4 -> 10 cells); valid (the default): 129 pixels -> 33 cells.
    assert.deepEqual(sizes, { a: 10, b: 10, c: 33 });
  });

  it('points DEEPLAB_SAMPLES_DIR at the package\'s sample data when Node-RED loads the nodes', () => {
    const dir = process.env.DEEPLAB_SAMPLES_DIR;
    assert.ok(dir && fs.existsSync(path.join(dir, 'images', 'vainf_000.jpg')), String(dir));
  });
});
