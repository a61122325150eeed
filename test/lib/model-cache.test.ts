import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { engineMemory } from '../../lib/compute/client';
import { ModelCache } from '../../lib/compute/model-cache';
import { WorkerPool, WorkerSlot } from '../../lib/compute/pool';
import { RawImage, ScoreMap } from '../../lib/contract';
import { TEST_TASKS, TestTasks } from '../helpers/test-tasks';
import { testImage } from '../helpers/test-image';

function mirror(img: RawImage): RawImage {
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      out.set(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3), (y * img.width + img.width - 1 - x) * 3);
    }
  }
  return { ...img, data: out };
}

function maxAbsDiff(a: ScoreMap, b: ScoreMap): number {
  assert.equal(a.data.length, b.data.length);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

describe('lib/compute: the process-wide model cache (models live in compute workers)', () => {
  const pool = new WorkerPool<TestTasks>(2, { taskModules: [TEST_TASKS] });
  const cache = new ModelCache(pool);
  const config = { spec: { variant: 'v3plus' as const, width: 0.125, classes: 5 } };
  after(() => pool.close());

  const memory = (slot: WorkerSlot<TestTasks>) => engineMemory(slot);
  const slotOfModel = () => pool.workers.find((w) => w.id === cache.stats()[0].worker)!;

  it('loads a config once for any number of users and releases it with the last', async () => {
    const a = cache.acquire(config);
    const b = cache.acquire({ ...config });
    const info = await a.ready();
    await b.ready();
    assert.equal(info.spec.classes, 5);
    assert.deepEqual(cache.stats().map((s) => [s.refs, s.loads]), [[2, 1]]);
    const slot = slotOfModel();
    assert.deepEqual((await pool.run('model.list', null, { slot })).length, 1);
    await a.release();
    assert.equal(cache.stats().length, 1);
    await b.release();
    assert.equal(cache.stats().length, 0);
    assert.deepEqual(await pool.run('model.list', null, { slot }), []);
    assert.equal((await memory(slot)).numTensors, 0, 'every variable freed in the worker');
  });

  it('emits one logits map per scale and flip; the flipped map is the mirrored image\'s map', async () => {
    const h = cache.acquire(config);
    const img = testImage(120, 90);
    const maps = await h.infer(img, { size: 129, scales: [0.5, 1], flip: true });
    assert.deepEqual(maps.map((m) => [m.width, m.height, m.classes, m.scale, m.flipped]), [
      [17, 13, 5, 0.5, false], [17, 13, 5, 0.5, true], [33, 25, 5, 1, false], [33, 25, 5, 1, true],
    ]);
    const [direct] = await h.infer(mirror(img), { size: 129 });
    assert.ok(maxAbsDiff(direct, maps[3]) < 1e-4, 'flipped run = run on the mirrored image');
    assert.equal(img.data.length, 120 * 90 * 3, 'the caller keeps its image');
    await h.release();
  });

  it('leaks no tensor over 100 forward passes', async () => {
    const h = cache.acquire(config);
    await h.ready();
    const slot = slotOfModel();
    await h.infer(testImage(40, 30), { size: 65 });
    const before = await memory(slot);
    for (let i = 0; i < 100; i++) await h.infer(testImage(40, 30, i), { size: 65, scales: i % 2 ? [1] : [0.75, 1], flip: i % 3 === 0 });
    const after = await memory(slot);
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numBytes, before.numBytes);
    await h.release();
  });

  it('publishes a checkpoint into a running model without reloading it (hot swap)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-swap-'));
    try {
      const trained = cache.acquire({ spec: { ...config.spec, seed: 42 } });
      await cache.save(trained, dir);
      const [want] = await trained.infer(testImage(50, 50), { size: 65 });
      await trained.release();

      const live = cache.acquire(config);
      const [before] = await live.infer(testImage(50, 50), { size: 65 });
      assert.ok(maxAbsDiff(before, want) > 1e-4);
      const n = await cache.publish({ dir }, (c) => c.spec.classes === 5);
      assert.equal(n, 1);
      const [after] = await live.infer(testImage(50, 50), { size: 65 });
      assert.ok(maxAbsDiff(after, want) < 1e-6);
      assert.equal(cache.stats()[0].loads, 1, 'no reload');
      await live.release();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a load failure is reported, not cached', async () => {
    const h = cache.acquire({ ...config, weights: { source: 'dir', path: '/nonexistent/model' } });
    await assert.rejects(h.ready(), /not a saved DeepLab model directory/);
    await assert.rejects(h.infer(testImage(10, 10), {}), /not a saved DeepLab model directory/);
    await h.release();
  });
});
