/**
 * deeplab-frame and deeplab-result in Node-RED (test helper, no broker): a frame encoded and
 * decoded again, a refused frame reaching Catch with its camera and frame id, the result and
 * error result messages. The acknowledgements and the window are test/mqtt's (a real broker).
 */
import { strict as assert } from 'assert';
import sharp from 'sharp';
import frameNode = require('../../nodes/frame/frame');
import resultNode = require('../../nodes/result/result');
import { decodeLabelImage } from '../../lib/data/labels';
import { helper, TestNode } from '../helpers/red';

type Msg = Record<string, unknown>;
const nextMsg = (n: TestNode): Promise<Msg> => new Promise((resolve) => n.once('input', (m: Msg) => resolve(m)));

describe('nodes/deeplab-frame and deeplab-result', () => {
  beforeEach(async () => {
    await new Promise<void>((r) => helper.startServer(r));
  });
  afterEach(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });

  it('encodes a RawImage as a frame and decodes it back; the result carries the frame id and class counts', async () => {
    await helper.load([frameNode, resultNode], [
      { id: 'enc', type: 'deeplab-frame', mode: 'encode', camera: 'dock', wires: [['mid']] },
      { id: 'mid', type: 'helper' },
      { id: 'dec', type: 'deeplab-frame', mode: 'decode', wires: [['out']] },
      { id: 'out', type: 'helper' },
      { id: 'res', type: 'deeplab-result', wires: [['pub'], ['pic']] },
      { id: 'pub', type: 'helper' },
      { id: 'pic', type: 'helper' },
    ]);
    const image = { width: 6, height: 4, channels: 3, data: Buffer.alloc(6 * 4 * 3, 90) };
    let p = nextMsg(helper.getNode('mid'));
    helper.getNode('enc').receive({ payload: image, frameId: 7, captureTime: 1000 } as never);
    const frame = await p;
    assert.strictEqual(frame.topic, 'deeplab/frames/dock');
    assert.deepStrictEqual(frame.userProperties, { camera: 'dock', frame: '7', captured: '1000', width: '6', height: '4' });
    assert.strictEqual(frame.qos, 1);
    assert.strictEqual((await sharp(frame.payload as Buffer).metadata()).format, 'jpeg');
    p = nextMsg(helper.getNode('out'));
    helper.getNode('dec').receive({ topic: frame.topic, payload: frame.payload, userProperties: frame.userProperties, qos: 1 } as never);
    const decoded = await p;
    const raw = decoded.payload as { width: number; height: number };
    assert.deepStrictEqual([raw.width, raw.height], [6, 4]);
    assert.deepStrictEqual({ ...(decoded.frame as Msg), receivedAt: 0, worker: '' }, { camera: 'dock', frameId: '7', captureTime: 1000, width: 6, height: 4, receivedAt: 0, worker: '', slot: 1 });
    // The pipeline's labels: class 0 everywhere but two pixels of class 15.
    const labels = { width: 6, height: 4, data: Buffer.alloc(24), ignoreIndex: 255 };
    labels.data[3] = 15;
    labels.data[9] = 15;
    p = nextMsg(helper.getNode('pub'));
    helper.getNode('res').receive({ ...decoded, payload: labels } as never);
    const result = await p;
    assert.strictEqual(result.topic, 'deeplab/results/dock');
    const summary = JSON.parse((result.userProperties as Record<string, string>).result);
    assert.deepStrictEqual([summary.ok, summary.camera, summary.frameId, summary.counts], [true, 'dock', '7', { background: 22, person: 2 }]);
    assert.deepStrictEqual([...(await decodeLabelImage(result.payload as Buffer)).data], [...labels.data]);
  });

  it('a malformed frame goes to Catch with its camera and frame id; deeplab-result makes an error result of it', async () => {
    await helper.load([frameNode, resultNode], [
      { id: 'dec', type: 'deeplab-frame', mode: 'decode', wires: [[]] },
      { id: 'res', type: 'deeplab-result', wires: [['pub'], []] },
      { id: 'pub', type: 'helper' },
    ]);
    const dec = helper.getNode('dec');
    const caught = new Promise<{ args: unknown[] }>((resolve) => dec.once<{ args: unknown[] }>('call:error', (c) => resolve(c)));
    dec.receive({ topic: 'deeplab/frames/gate', payload: Buffer.from('junk'), userProperties: { frame: '9', captured: '5', width: '2', height: '2' }, qos: 1 } as never);
    const { args } = await caught;
    const [err, msg] = args as [Error & { code?: string }, Msg];
    assert.strictEqual(err.code, 'DEEPLAB_BAD_FRAME');
    // What a Catch node hands on: the message with msg.error (Node-RED copies the error's code).
    const p = nextMsg(helper.getNode('pub'));
    helper.getNode('res').receive({ ...msg, error: { message: err.message, code: err.code } } as never);
    const r = await p;
    assert.strictEqual(r.topic, 'deeplab/results/gate');
    const s = JSON.parse((r.userProperties as Record<string, string>).result);
    assert.deepStrictEqual([s.ok, s.camera, s.frameId, s.error.code], [false, 'gate', '9', 'DEEPLAB_BAD_FRAME']);
    assert.match(s.error.message, /not an image/);
    assert.strictEqual((r.payload as Buffer).length, 0);
  });
});
