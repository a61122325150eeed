/**
 * deeplab-infer's bounded queue in Node-RED: every message that does not run reaches a real
 * Catch node once, as the original message with msg.error.code set. Bounded by message counts
 * (each wait ends when the expected messages arrived), never by time.
 */
import { strict as assert } from 'assert';
import sharp from 'sharp';
import { catchNode, helper, messages, statusLog } from '../helpers/red';

const modelNode = require('../../nodes/deeplab-model/deeplab-model');
const inferNode = require('../../nodes/deeplab-infer/deeplab-infer');
const ALL = [modelNode, inferNode, catchNode];
const MODEL = { id: 'm1', type: 'deeplab-model', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' };

type Caught = { topic: number; payload: unknown; error: { message: string; code?: string; source: { id: string; type: string } } };

function flow(queueSize: number, queuePolicy: string) {
  return [
    MODEL,
    { id: 'inf', type: 'deeplab-infer', model: 'm1', size: 65, queueSize, queuePolicy, wires: [['o']] },
    { id: 'c', type: 'catch', scope: ['inf'], uncaught: false, wires: [['caught']] },
    { id: 'o', type: 'helper' },
    { id: 'caught', type: 'helper' },
  ];
}

async function photo(): Promise<Buffer> {
  const raw = Buffer.alloc(32 * 24 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37) % 251;
  return sharp(raw, { raw: { width: 32, height: 24, channels: 3 } }).png().toBuffer();
}

describe('nodes: deeplab-infer queue, drops reach Catch', function () {
  this.timeout(600_000); // hang guard only
  afterEach(async () => {
    await helper.unload();
  });

  it('drop-oldest: the dropped messages reach Catch as the originals with code DEEPLAB_DROPPED, the rest are processed', async () => {
    await helper.load(ALL, flow(1, 'drop-oldest'));
    const log = statusLog(helper.getNode('inf'));
    const img = await photo();
    const outs = messages<{ topic: number }>(helper.getNode('o'), 2, 600_000);
    const caughtAll = messages<Caught>(helper.getNode('caught'), 3, 600_000);
    const caughtList: Caught[] = [];
    helper.getNode('caught').on('input', (m) => caughtList.push(m as Caught));
    // Decoding is asynchronous: all five arrive while the first one runs.
    for (let i = 0; i < 5; i++) helper.getNode('inf').receive({ payload: img, topic: i });
    const caught = await caughtAll;
    assert.deepEqual((await outs).map((m) => m.topic), [0, 4], 'the first runs, the freshest waits, the others are dropped');
    assert.deepEqual(caught.map((m) => m.topic), [1, 2, 3]);
    for (const m of caught) {
      assert.equal(m.error.code, 'DEEPLAB_DROPPED');
      assert.equal(m.error.source.id, 'inf');
      assert.match(m.error.message, /dropped/);
      assert.ok(Buffer.isBuffer(m.payload) && (m.payload as Buffer).equals(img), 'the original message, payload untouched');
    }
    assert.equal(caughtList.length, 3, 'each drop is reported once');
    assert.ok(log.some((s) => s.text?.includes('dropped 3')), JSON.stringify(log));
  });

  it('wait: holds the queue size, refuses the rest with DEEPLAB_BUSY, processes every one it accepted', async () => {
    await helper.load(ALL, flow(2, 'wait'));
    const img = await photo();
    const outs = messages<{ topic: number }>(helper.getNode('o'), 3, 600_000);
    const caught = messages<Caught>(helper.getNode('caught'), 7, 600_000);
    for (let i = 0; i < 10; i++) helper.getNode('inf').receive({ payload: img, topic: i });
    const refused = await caught;
    assert.deepEqual(refused.map((m) => m.topic), [3, 4, 5, 6, 7, 8, 9]);
    assert.ok(refused.every((m) => m.error.code === 'DEEPLAB_BUSY' && /refused: 2 messages already waiting/.test(m.error.message)));
    assert.deepEqual((await outs).map((m) => m.topic), [0, 1, 2]);
  });

  it('bad input and a drop are told apart by msg.error.code (none for a bad image)', async () => {
    await helper.load(ALL, flow(0, 'drop-newest'));
    const caught = messages<Caught>(helper.getNode('caught'), 2, 600_000);
    const out = messages<{ topic: number }>(helper.getNode('o'), 1, 600_000);
    helper.getNode('inf').receive({ payload: await photo(), topic: 0 });
    helper.getNode('inf').receive({ payload: await photo(), topic: 1 });
    await out;
    helper.getNode('inf').receive({ payload: Buffer.from('not an image'), topic: 2 });
    const [drop, bad] = await caught;
    assert.deepEqual([drop.topic, drop.error.code], [1, 'DEEPLAB_DROPPED']);
    assert.equal(bad.topic, 2);
    assert.equal(bad.error.code, undefined);
  });
});
