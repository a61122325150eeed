import { strict as assert } from 'assert';
import * as vm from 'vm';
import {
  ContractError, asBuffer, expectLabelMap, expectRawImage, expectScoreMap, isLabelMap, isRawImage, isScoreMap, scoreValues,
  toWireLabelMap, toWireRawImage, toWireScoreMap, ScoreMap,
} from '../../lib/contract';

// Node-RED's own clone (lodash cloneDeep), as a fan-out runs it.
const { cloneMessage } = (require('@node-red/util') as { util: { cloneMessage: <T>(m: T) => T } }).util;

/** Evaluates code in a fresh vm context: another realm, as a Function node's sandbox is. */
const otherRealm = <T>(code: string): T => vm.runInNewContext(code) as T;

describe('lib/contract: the message contract on wires', () => {
  it('reads typed arrays and ArrayBuffers of another realm, as views of the same memory', () => {
    const u8 = otherRealm<Uint8Array>('new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])');
    assert.equal(u8 instanceof Uint8Array, false, 'the array really comes from another realm');
    const img = expectRawImage({ width: 2, height: 2, channels: 3, data: u8 });
    assert.ok(Buffer.isBuffer(img.data));
    assert.equal(img.data.buffer, u8.buffer, 'no copy');
    assert.deepEqual([...img.data], [...u8]);

    const ab = otherRealm<ArrayBuffer>('new Uint8Array([0, 1, 2, 255]).buffer');
    const labels = expectLabelMap({ width: 2, height: 2, data: ab, ignoreIndex: 255 });
    assert.deepEqual([...labels.data], [0, 1, 2, 255]);
    assert.equal(labels.data.buffer, ab);

    const f32 = otherRealm<Float32Array>('new Float32Array([0.5, -1, 2, 3.25, 0, 1])');
    const map = expectScoreMap({ width: 1, height: 2, classes: 3, data: f32, kind: 'logits', stride: 8 });
    assert.ok(map.data instanceof Float32Array, 'a view of this realm');
    assert.equal(map.data.buffer, f32.buffer);
    assert.deepEqual([...map.data], [0.5, -1, 2, 3.25, 0, 1]);
    // The same scores as float32 little-endian bytes built over there.
    const bytes = otherRealm<Uint8Array>('new Uint8Array(new Float32Array([0.5, -1, 2, 3.25, 0, 1]).buffer)');
    assert.deepEqual([...expectScoreMap({ width: 1, height: 2, classes: 3, data: bytes, kind: 'logits', stride: 8 }).data], [0.5, -1, 2, 3.25, 0, 1]);
    assert.ok(isRawImage({ width: 2, height: 2, channels: 3, data: u8 }) && isLabelMap({ width: 2, height: 2, data: ab }));
    assert.ok(isScoreMap({ width: 1, height: 2, classes: 3, data: f32 }));
  });

  it('takes float32 bytes at any offset: a view when aligned, a copy when not', () => {
    const values = Float32Array.from([1.5, -2, 7]);
    const aligned = Buffer.from(values.buffer);
    const viewed = scoreValues({ width: 1, height: 1, classes: 3, data: aligned })!;
    assert.equal(viewed.buffer, values.buffer);
    const odd = Buffer.alloc(13);
    aligned.copy(odd, 1);
    const copied = scoreValues({ width: 1, height: 1, classes: 3, data: odd.subarray(1) })!;
    assert.deepEqual([...copied], [1.5, -2, 7]);
    assert.equal(scoreValues({ width: 1, height: 1, classes: 3, data: Buffer.alloc(11) }), undefined);
  });

  it('refuses what does not fit, saying what was expected and what came', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => expectRawImage({ width: 4, height: 4, channels: 3, data: new Uint8Array(5) }), /RawImage data must be 4x4x3 = 48 bytes .*got a Uint8Array of length 5/],
      [() => expectRawImage({ width: 2, height: 2, channels: 3, data: new Uint16Array(12) }), /got a Uint16Array of length 12/],
      [() => expectRawImage({ width: 2, height: 2, channels: 4, data: new Uint8Array(16) }), /channels: 3 \(RGB\), got 4/],
      [() => expectRawImage(Buffer.alloc(3), 'msg.image'), /msg.image: expected a RawImage .*got a Buffer of 3 bytes/],
      [() => expectLabelMap({ width: 2, height: 2, data: new Uint8Array(4), ignoreIndex: 300 }), /ignoreIndex must be an integer in 0..255, got 300/],
      [() => expectLabelMap({ width: 1, height: 1, classes: 2, data: new Uint8Array(1) }), /a ScoreMap\?/],
      [() => expectScoreMap({ width: 0, height: 2, classes: 3, data: new Float32Array(0) }), /width 0 \(positive integers expected\)/],
      [() => expectScoreMap({ width: 2, height: 2, classes: 3, data: new Float64Array(12) }), /12 float32 scores .*got a Float64Array of length 12/],
      [() => expectScoreMap('scores'), /expected a ScoreMap .*got string "scores"/],
    ];
    for (const [run, re] of cases) assert.throws(run, (e: Error) => e instanceof ContractError && re.test(e.message), String(re));
  });

  it('puts Buffers on wires over the same memory, which a Node-RED clone shares and keeps intact', () => {
    const map: ScoreMap = { width: 2, height: 1, classes: 2, data: Float32Array.from([0.25, 0.75, 0.5, 0.125]), kind: 'probs', stride: 1 };
    const wire = toWireScoreMap(map);
    assert.ok(Buffer.isBuffer(wire.data));
    assert.equal(wire.data.buffer, map.data.buffer, 'wrapped, not copied');
    assert.equal(wire.data.readFloatLE(4), 0.75, 'little-endian float32 bytes');
    const labels = toWireLabelMap({ width: 2, height: 1, data: Uint8Array.from([1, 0]), ignoreIndex: 255 });
    const image = toWireRawImage({ width: 1, height: 1, channels: 3, data: Uint8Array.from([9, 8, 7]) });
    assert.ok(Buffer.isBuffer(labels.data) && Buffer.isBuffer(image.data));

    const msg = { payload: wire, labels, image };
    const clone = cloneMessage(msg);
    assert.notEqual(clone.payload, msg.payload, 'the message objects are cloned');
    assert.ok(Buffer.isBuffer(clone.payload.data) && Buffer.isBuffer(clone.labels.data) && Buffer.isBuffer(clone.image.data));
    assert.deepEqual([...scoreValues(clone.payload)!], [0.25, 0.75, 0.5, 0.125]);
    assert.deepEqual([...clone.labels.data], [1, 0]);
    assert.equal(clone.payload.data.buffer, map.data.buffer, 'cloneDeep keeps a Buffer as a view of the same memory');
    assert.equal(asBuffer(clone.image.data), clone.image.data);
  });
});
