import { strict as assert } from 'assert';
import { LabelMap, ScoreMap, WireScoreMap, scoreValues } from '../../lib/contract';
import { denseCrf } from '../../lib/crf/dense-crf';
import { closeCrfHelper } from '../../lib/crf/parallel';
import { CRF_PRESETS, CrfParams } from '../../lib/crf/params';
import { encodeImage } from '../../lib/data/image';
import { argmaxScoreMap, softmaxScoreMap } from '../../lib/ops/score-map';
import { getPool } from '../../lib/compute/pool';
import { noisyLogits, scene } from '../lib/crf-fixtures';
import { catchNode, helper, nextMessage, statusLog, TestNode } from '../helpers/red';
import crfNode = require('../../nodes/dense-crf/dense-crf');

type Msg = Record<string, unknown>;

/** The scores of a map that came off a wire (float32 bytes in a Buffer). */
function values(m: unknown): Float32Array {
  const map = m as WireScoreMap;
  assert.ok(Buffer.isBuffer(map.data), 'scores travel as a Buffer');
  return scoreValues(map)!;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const nextError = (n: TestNode): Promise<string> =>
  new Promise((resolve) => n.on('call:error', (c) => resolve(String((c as { firstArg: unknown }).firstArg))));

describe('nodes/dense-crf', function () {
  this.timeout(600_000);
  const { image, labels } = scene(72, 60, 4, 5, 15);
  const map = noisyLogits(labels, 4, 6);

  beforeEach(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });
  after(() => closeCrfHelper());

  it('works with only its type and wires: DeepLab v2 preset, labels in payload (a Buffer), no probabilities', async () => {
    await helper.load([crfNode], [{ id: 'n', type: 'dense-crf', wires: [['out']] }, { id: 'out', type: 'helper' }]);
    const status = statusLog(helper.getNode('n'));
    const got = nextMessage<Msg>(helper.getNode('out'));
    helper.getNode('n').receive({ payload: map, image, topic: 'keep' });
    const m = await got;
    const ref = denseCrf(map, image, CRF_PRESETS['deeplab-v2'], { threads: 1 });
    const out = m.payload as LabelMap;
    assert.equal(m.probabilities, undefined, 'full-resolution probabilities only when asked');
    assert.deepEqual([out.width, out.height, out.ignoreIndex], [72, 60, 255]);
    assert.ok(Buffer.isBuffer(out.data), 'labels travel as a Buffer');
    assert.deepEqual([...out.data], [...argmaxScoreMap(ref.probs).data]);
    const passed = m.image as typeof image;
    assert.ok(Buffer.isBuffer(passed.data) && passed.data.buffer === image.data.buffer, 'the image goes on for seg-render, as a Buffer over the same memory');
    assert.equal(m.topic, 'keep');
    assert.equal(map.data.length, 72 * 60 * 4, 'the input map is not detached');
    assert.ok(status.some((s) => s.fill === 'blue'), 'busy while the worker runs');
    assert.match(status[status.length - 1].text ?? '', /^\d+ ms · deeplab-v2 · 10 it\.$/);
    assert.equal(status[status.length - 1].fill, 'green');
  });

  it('puts probabilities in the payload when asked, with custom parameters, from configured properties', async () => {
    const custom: CrfParams = { iterations: 3, w1: 6, thetaAlpha: 20, thetaBeta: 10, w2: 2, thetaGamma: 2 };
    await helper.load([crfNode], [
      { id: 'n', type: 'dense-crf', result: 'probs', preset: 'custom', property: 'scores', imageProperty: 'msg.photo', ...custom, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const got = nextMessage<Msg>(helper.getNode('out'));
    helper.getNode('n').receive({ scores: map, photo: image });
    const m = await got;
    const ref = denseCrf(map, image, custom, { threads: 1 });
    const probs = m.payload as ScoreMap;
    assert.deepEqual([probs.width, probs.height, probs.classes, probs.kind, probs.stride], [72, 60, 4, 'probs', 1]);
    assert.ok(maxDiff(values(probs), ref.probs.data) < 1e-5);
    assert.deepEqual([...(m.labels as LabelMap).data], [...argmaxScoreMap(ref.probs).data]);
    assert.equal(m.scores, map, 'the input stays where it was');
  });

  it('applies msg.crf per message (iterations 0 gives the softmax of the input) and accepts an encoded image', async () => {
    await helper.load([crfNode], [
      { id: 'n', type: 'dense-crf', result: 'probs', preset: 'densecrf-example', wires: [['out']] }, { id: 'out', type: 'helper' },
    ]);
    let got = nextMessage<Msg>(helper.getNode('out'));
    helper.getNode('n').receive({ payload: map, image, crf: { iterations: 0 } });
    assert.ok(maxDiff(values((await got).payload), softmaxScoreMap(map).data) < 1e-6);

    const override = { w1: 3, thetaBeta: '20' };
    got = nextMessage<Msg>(helper.getNode('out'));
    helper.getNode('n').receive({ payload: map, image: await encodeImage(image, 'png'), crf: override });
    const ref = denseCrf(map, image, { ...CRF_PRESETS['densecrf-example'], w1: 3, thetaBeta: 20 }, { threads: 1 });
    assert.ok(maxDiff(values((await got).payload), ref.probs.data) < 1e-5);
  });

  it('reports bad input to a Catch node with a clear message, turns red, and keeps working', async () => {
    await helper.load([crfNode, catchNode], [
      { id: 'n', type: 'dense-crf', wires: [['out']] }, { id: 'out', type: 'helper' },
      { id: 'c', type: 'catch', scope: null, uncaught: false, wires: [['caught']] }, { id: 'caught', type: 'helper' },
    ]);
    const n = helper.getNode('n');
    const status = statusLog(n);
    const nan = { ...map, data: Float32Array.from(map.data) };
    nan.data[(3 * 72 + 2) * 4 + 1] = NaN;
    const cases: [string, Msg, RegExp][] = [
      ['size mismatch', { payload: { ...map, width: 36, height: 120 }, image }, /36x120 but msg.image is 72x60: upsample/],
      ['missing image', { payload: map }, /msg.image is missing/],
      ['NaN in the map', { payload: nan, image }, /holds NaN at pixel \(2, 3\), class 1/],
      ['multi-scale array', { payload: [map, map], image }, /2 score maps .*msc-fusion/],
      ['not a map', { payload: 'hello', image }, /expected a ScoreMap/],
      ['bad msg.crf', { payload: map, image, crf: { thetaAlpha: 0 } }, /msg.crf: thetaAlpha must be a finite number > 0/],
      ['unknown msg.crf key', { payload: map, image, crf: { sxy: 3 } }, /unknown key "sxy"/],
    ];
    for (const [what, msg, re] of cases) {
      const caught = nextMessage<Msg>(helper.getNode('caught'));
      const err = nextError(n);
      n.receive({ ...msg, topic: what });
      const c = await caught;
      assert.match(await err, re, what);
      assert.equal(c.topic, what, 'the Catch node gets the original message');
      assert.match(String((c.error as { message: string }).message), re, what);
      assert.equal(status[status.length - 1].fill, 'red', what);
    }
    const got = nextMessage<Msg>(helper.getNode('out'));
    n.receive({ payload: map, image });
    assert.equal(((await got).payload as LabelMap).width, 72);
    assert.equal(status[status.length - 1].fill, 'green');
  });

  it('shows a configuration error instead of crashing', async () => {
    await helper.load([crfNode], [
      { id: 'a', type: 'dense-crf', preset: 'sharpest', wires: [] },
      { id: 'b', type: 'dense-crf', preset: 'custom', thetaAlpha: -3, wires: [] },
    ]);
    for (const id of ['a', 'b']) {
      const s = (helper.getNode(id).status as { lastCall?: { args: [{ fill: string; text: string }] } }).lastCall!.args[0];
      assert.equal(s.fill, 'red');
      assert.match(s.text, /config/);
    }
  });

  it('handles a burst of messages with no job left behind in the workers', async () => {
    await helper.load([crfNode], [{ id: 'n', type: 'dense-crf', preset: 'densecrf-example', wires: [['out']] }, { id: 'out', type: 'helper' }]);
    const out = helper.getNode('out');
    const seen: Msg[] = [];
    const all = new Promise<void>((resolve) => out.on('input', (m) => {
      seen.push(m as Msg);
      if (seen.length === 6) resolve();
    }));
    for (let i = 0; i < 6; i++) helper.getNode('n').receive({ payload: map, image, i });
    await all;
    assert.deepEqual(seen.map((m) => m.i).sort(), [0, 1, 2, 3, 4, 5]);
    assert.ok(!getPool().busy, 'every worker job settled');
  });
});
