/**
 * The MQTT frame and result envelopes (lib/transport) and the indexed label PNG: properties in
 * and out, every refusal a malformed frame can meet (before any pixel is decoded where the header
 * says too much), acknowledgement bookkeeping and topic matching.
 */
import * as assert from 'assert';
import sharp from 'sharp';
import { AckGate, ackKey, topicMatches } from '../../lib/transport/ack-gate';
import {
  BAD_FRAME, cameraOf, classCounts, decodeFrame, FrameError, frameTopic, frameUserProperties, readFrameMeta, resultTopic,
} from '../../lib/transport/envelope';
import { encodeLabelPng } from '../../lib/data/label-png';
import { decodeLabelImage } from '../../lib/data/labels';
import { vocPalette } from '../../lib/data/palette';
import { hugePngHeader } from '../mqtt/scale-out';

const meta = { camera: 'gate-3', frameId: '42', captureTime: 1_700_000_000_123, width: 5, height: 4 };

describe('transport: MQTT frame and result envelopes', () => {
  it('reads back the properties it writes, and the topic names the camera', () => {
    const props = frameUserProperties(meta);
    assert.deepStrictEqual(props, { camera: 'gate-3', frame: '42', captured: '1700000000123', width: '5', height: '4' });
    assert.deepStrictEqual(readFrameMeta(props, frameTopic('gate-3')), meta);
    assert.strictEqual(frameTopic('gate-3'), 'deeplab/frames/gate-3');
    assert.strictEqual(resultTopic('gate-3'), 'deeplab/results/gate-3');
    // Without a camera property the topic's last level names it.
    const { camera: _c, ...rest } = props;
    assert.strictEqual(readFrameMeta(rest, 'deeplab/frames/dock').camera, 'dock');
  });

  it('refuses missing and malformed properties with DEEPLAB_BAD_FRAME, naming them', () => {
    const expectBad = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof FrameError && e.code === BAD_FRAME && re.test(e.message));
    expectBad(() => readFrameMeta(undefined, 'deeplab/frames/a'), /no MQTT v5 user properties/);
    expectBad(() => readFrameMeta({ camera: 'a' }, 'deeplab/frames/a'), /frame, captured, width, height/);
    expectBad(() => readFrameMeta({ ...frameUserProperties(meta), width: '-3' }), /width must be an integer >= 1/);
    expectBad(() => readFrameMeta({ ...frameUserProperties(meta), captured: 'yesterday' }), /captured must be an integer/);
    expectBad(() => frameTopic('a/b'), /camera id/);
    expectBad(() => frameTopic('a+'), /camera id/);
    assert.strictEqual(cameraOf(undefined, 'deeplab/frames/#'), undefined);
  });

  it('decodes a frame, and refuses a non-picture, a size mismatch and a 30000x30000 header before decoding', async () => {
    const jpeg = await sharp(Buffer.alloc(5 * 4 * 3, 200), { raw: { width: 5, height: 4, channels: 3 } }).jpeg().toBuffer();
    const img = await decodeFrame(jpeg, meta);
    assert.deepStrictEqual([img.width, img.height, img.channels, img.data.length], [5, 4, 3, 60]);
    const bad = async (payload: unknown, m: typeof meta, re: RegExp) => assert.rejects(decodeFrame(payload, m), (e: unknown) => e instanceof FrameError && re.test((e as Error).message));
    await bad(Buffer.from('not a picture'), meta, /not an image/);
    await bad(undefined, meta, /Buffer/);
    await bad(jpeg, { ...meta, width: 6 }, /5x4, its properties say 6x4/);
    // The header alone: decoding it would need 30000 * 30000 * 3 bytes.
    await bad(hugePngHeader(), { ...meta, width: 30000, height: 30000 }, /30000x30000 = 900000000 pixels, above the limit/);
  });

  it('encodes a label map as an indexed PNG that reads back exactly, coloured with the palette', async () => {
    const data = Buffer.from([0, 1, 2, 15, 255, 0, 20, 20, 3, 3, 1, 0]);
    const labels = { width: 4, height: 3, data, ignoreIndex: 255 };
    const png = encodeLabelPng(labels, vocPalette(21));
    const back = await decodeLabelImage(png);
    assert.deepStrictEqual([back.width, back.height], [4, 3]);
    assert.deepStrictEqual([...back.data], [...data]);
    // Seen as a picture: class 15 (person) in the VOC colour, the ignore index white.
    const rgb = await sharp(png).removeAlpha().raw().toBuffer();
    assert.deepStrictEqual([...rgb.subarray(9, 12)], vocPalette(21)[15]);
    assert.deepStrictEqual([...rgb.subarray(12, 15)], [255, 255, 255]);
    assert.deepStrictEqual(classCounts(labels, ['bg', 'a', 'b', 'c']), { counts: { bg: 3, a: 2, b: 1, c: 2, 15: 1, 20: 2 }, ignored: 1 });
  });

  it('holds acknowledgements per key oldest first, and forgets those of a closed connection', () => {
    const gate = new AckGate();
    const sent: string[] = [];
    const connA = {};
    const connB = {};
    gate.hold(ackKey('deeplab/frames/a', '1'), connA, () => sent.push('a1'));
    gate.hold(ackKey('deeplab/frames/a', '1'), connA, () => sent.push('a1 again'));
    gate.hold(ackKey('deeplab/frames/b', undefined), connB, () => sent.push('b?'));
    assert.strictEqual(gate.size, 3);
    assert.strictEqual(gate.release(ackKey('deeplab/frames/a', '1')), true);
    assert.deepStrictEqual(sent, ['a1']);
    assert.strictEqual(gate.drop(connA), 1);
    assert.strictEqual(gate.release(ackKey('deeplab/frames/a', '1')), false);
    assert.strictEqual(gate.release(ackKey('deeplab/frames/b', undefined)), true);
    assert.deepStrictEqual(sent, ['a1', 'b?']);
    assert.strictEqual(gate.size, 0);
  });

  it('matches topic filters, shared subscriptions included', () => {
    assert.ok(topicMatches('$share/deeplab/deeplab/frames/+', 'deeplab/frames/cam1'));
    assert.ok(!topicMatches('$share/deeplab/deeplab/frames/+', 'deeplab/frames/cam1/x'));
    assert.ok(topicMatches('deeplab/#', 'deeplab/frames/cam1/x'));
    assert.ok(!topicMatches('deeplab/frames/+', 'deeplab/results/cam1'));
  });
});
