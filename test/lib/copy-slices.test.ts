import { strict as assert } from 'assert';
import * as vm from 'vm';
import sharp from 'sharp';
import { composePicture as composeInWorker } from '../../lib/compute/client';
import { WorkerPool } from '../../lib/compute/pool';
import { classColors, classNames } from '../../lib/data/palette';
import { argmaxScoreMap } from '../../lib/ops/score-map';
import { composePicture, encodePicture, renderSegmentation } from '../../lib/render/render';
import { copyBytes, copyFloats } from '../../lib/runtime/copy-slices';
import { testImage } from '../helpers/test-image';
import { noisyLogits, scene } from './crf-fixtures';

describe('lib/runtime: copies for the compute workers, a slice per turn of the event loop', () => {
  it('copies every value into a buffer of its own, whatever the slice and the source (Buffer, another realm)', async () => {
    const src = Float32Array.from({ length: 10_007 }, (_, i) => Math.sin(i) * 1e3);
    for (const slice of [4, 4096, 40_000, 1 << 22]) {
      const c = await copyFloats(src, slice);
      assert.notEqual(c.buffer, src.buffer);
      assert.equal(c.byteOffset, 0);
      assert.equal(c.buffer.byteLength, src.byteLength, 'transferable whole');
      assert.deepEqual(c, src);
    }
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 255));
    const b = await copyBytes(bytes.subarray(3), 1000);
    assert.ok(!Buffer.isBuffer(b) && b.buffer.byteLength === 4997);
    assert.deepEqual(Array.from(b), Array.from(bytes.subarray(3)));
    const foreign = vm.runInNewContext('new Float32Array([1.5, -2, 3])') as Float32Array;
    assert.deepEqual(Array.from(await copyFloats(foreign, 4)), [1.5, -2, 3]);
  });

  it('lets the event loop run between slices, and copies what fits one slice at once', async () => {
    let ran = false;
    setImmediate(() => (ran = true));
    await copyBytes(new Uint8Array(1 << 20), 64 << 10);
    assert.ok(ran, 'a callback waiting on the loop ran during a 16-slice copy');
    ran = false;
    setImmediate(() => (ran = true));
    await copyBytes(new Uint8Array(1000), 64 << 10);
    assert.ok(!ran, 'one slice: no turn of the loop');
  });
});

describe('lib/compute: seg-render\'s pixel work in a compute worker', () => {
  const pool = new WorkerPool(1);
  after(() => pool.close());

  it('composes the picture a direct rendering composes (labels or a score map, each mode), inputs left as they were', async () => {
    const s = scene(97, 61, 5, 4);
    const map = noisyLogits(s.labels, 5, 8);
    const labels = argmaxScoreMap(map);
    const image = testImage(97, 61, 3);
    const colors = classColors(5);
    const imageBefore = Buffer.from(image.data);
    for (const mode of ['overlay', 'mask', 'side-by-side'] as const) {
      const want = composePicture(labels, image, colors, { mode, opacity: 0.4 });
      for (const input of [{ labels }, { map }]) {
        const got = await composeInWorker({ ...input, image, colors, mode, opacity: 0.4 }, pool);
        assert.deepEqual([got.picture.width, got.picture.height], [want.picture.width, want.picture.height]);
        assert.ok(Buffer.from(got.picture.data).equals(Buffer.from(want.picture.data)), `${mode} from ${Object.keys(input)[0]}`);
        assert.deepEqual(got.present, want.present);
      }
    }
    assert.ok(Buffer.from(image.data).equals(imageBefore));
    assert.equal(map.data.length, 97 * 61 * 5, 'the map was copied, not moved');
    // And the encoded picture is the one renderSegmentation makes.
    const direct = await renderSegmentation(labels, image, 5, { mode: 'overlay', opacity: 0.5, legend: true, format: 'png', quality: 85 });
    const viaWorker = await encodePicture(await composeInWorker({ labels, image, colors, mode: 'overlay', opacity: 0.5 }, pool), classNames(5), colors, { legend: true, format: 'png', quality: 85 });
    const [a, b] = await Promise.all([direct.buffer, viaWorker.buffer].map((x) => sharp(x).raw().toBuffer()));
    assert.ok(a.equals(b));
    assert.deepEqual(viaWorker.classesPresent, direct.classesPresent);
  });
});
