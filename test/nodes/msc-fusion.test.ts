import { strict as assert } from 'assert';
import { ScoreMap, scoreValues } from '../../lib/contract';
import { fuseScoreMaps } from '../../lib/fusion';
import fusionNode = require('../../nodes/msc-fusion/msc-fusion');
import { helper, TestNode } from '../helpers/red';


type Msg = Record<string, unknown>;
const nextMsg = (n: TestNode): Promise<Msg> => new Promise((resolve) => n.once('input', (m: Msg) => resolve(m)));
const nextError = (n: TestNode): Promise<string> =>
  new Promise((resolve) => n.once<{ firstArg: unknown }>('call:error', (c) => resolve(String(c.firstArg))));

function randomMap(w: number, h: number, c: number, seed: number, extra: Partial<ScoreMap> = {}): ScoreMap {
  let s = seed;
  const data = Float32Array.from({ length: w * h * c }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 8 - 4);
  return { width: w, height: h, classes: c, data, kind: 'logits', stride: 8, ...extra };
}

describe('nodes/msc-fusion', () => {
  beforeEach(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });

  it('works with only its type and wires: mean of probabilities at the scale-1 size, corners aligned', async () => {
    await helper.load(fusionNode, [{ id: 'f', type: 'msc-fusion', wires: [['out']] }, { id: 'out', type: 'helper' }]);
    const maps = [randomMap(9, 9, 4, 1, { scale: 1 }), randomMap(5, 5, 4, 2, { scale: 0.5 }), randomMap(9, 9, 4, 3, { scale: 1, flipped: true })];
    const ref = fuseScoreMaps(maps, { method: 'mean-probs', base: 'scale1', alignCorners: true });
    const got = nextMsg(helper.getNode('out'));
    helper.getNode('f').receive({ payload: maps, keep: 'me' });
    const m = await got;
    const out = m.payload as ScoreMap;
    assert.equal(out.kind, 'probs');
    assert.equal(out.width, 9);
    assert.ok(Buffer.isBuffer(out.data), 'the fused scores travel as a Buffer');
    assert.deepEqual(scoreValues(out), ref.data);
    assert.equal(m.keep, 'me', 'the rest of the message passes on');
  });

  it('fuses large maps in a worker to the image size, the same as inline', async () => {
    await helper.load(fusionNode, [
      { id: 'f', type: 'msc-fusion', method: 'max', base: 'image', alignCorners: false, wires: [['out']] }, { id: 'out', type: 'helper' },
    ]);
    const maps = [randomMap(33, 33, 21, 1, { scale: 1 }), randomMap(17, 17, 21, 2, { scale: 0.5, flipped: true })];
    const image = { width: 129, height: 97, channels: 3, data: new Uint8Array(129 * 97 * 3) };
    const ref = fuseScoreMaps(maps, { method: 'max', base: 'image', width: 129, height: 97, alignCorners: false });
    const got = nextMsg(helper.getNode('out'));
    helper.getNode('f').receive({ payload: maps, image });
    const out = (await got).payload as ScoreMap;
    assert.deepEqual([out.width, out.height, out.stride], [129, 97, 1]);
    assert.deepEqual(scoreValues(out), ref.data);
    assert.equal(maps[0].data.length, 33 * 33 * 21, 'the input arrays are not detached');
  });

  it('reports bad input to node.error and keeps working', async () => {
    await helper.load(fusionNode, [
      { id: 'f', type: 'msc-fusion', base: 'image', wires: [['out']] }, { id: 'out', type: 'helper' },
    ]);
    const f = helper.getNode('f');
    let e = nextError(f);
    f.receive({ payload: [] });
    assert.match(await e, /empty array/);
    e = nextError(f);
    f.receive({ payload: [randomMap(3, 3, 2, 1)] });
    assert.match(await e, /needs msg.image as a RawImage/);
    e = nextError(f);
    f.receive({});
    assert.match(await e, /msg.payload is missing/);
    const got = nextMsg(helper.getNode('out'));
    f.receive({ payload: [randomMap(3, 3, 2, 1)], image: { width: 4, height: 4, channels: 3, data: new Uint8Array(48) } });
    assert.equal(((await got).payload as ScoreMap).width, 4);
  });

  it('shows a configuration error instead of crashing', async () => {
    await helper.load(fusionNode, [{ id: 'f', type: 'msc-fusion', method: 'median', wires: [] }]);
    const f = helper.getNode('f');
    const e = nextError(f);
    f.receive({ payload: [randomMap(3, 3, 2, 1)] });
    assert.match(await e, /"median" is not one of max, mean-probs, mean-logits/);
  });
});
