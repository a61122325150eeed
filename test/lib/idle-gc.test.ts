import { strict as assert } from 'assert';
import { crf, engineMemory } from '../../lib/compute/client';
import { WorkerPool } from '../../lib/compute/pool';
import { IdleCollector, idleGcDelay } from '../../lib/runtime/idle-gc';
import { TEST_TASKS, TestTasks } from '../helpers/test-tasks';
import { noisyLogits, scene } from './crf-fixtures';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lib/runtime: a collection when a compute worker goes quiet', () => {
  it('collects once after the quiet time, restarted by each touch and stopped by cancel', async () => {
    let calls = 0;
    const idle = new IdleCollector(40, () => ++calls > 0);
    idle.touch();
    await sleep(20);
    idle.touch(); // restarts the wait
    await sleep(30);
    assert.equal(calls, 0, 'not before 40 ms of quiet');
    await sleep(40);
    assert.equal(calls, 1);
    idle.touch();
    idle.cancel(); // a job started
    await sleep(80);
    assert.equal(calls, 1);
    assert.equal(idle.collections, 1);
    const off = new IdleCollector(0, () => ++calls > 0);
    off.touch();
    await sleep(20);
    assert.equal(calls, 1, 'a quiet time of 0 turns it off');
  });

  it('reads DEEPLAB_WORKER_IDLE_GC_MS and refuses nonsense', () => {
    assert.equal(idleGcDelay({}), 35_000);
    assert.equal(idleGcDelay({ DEEPLAB_WORKER_IDLE_GC_MS: '250' }), 250);
    assert.throws(() => idleGcDelay({ DEEPLAB_WORKER_IDLE_GC_MS: 'soon' }), /DEEPLAB_WORKER_IDLE_GC_MS must be a number/);
  });

  it('gives a job\'s garbage back to the system once the worker is quiet (RSS falls without another job allocating)', async () => {
    const before = process.env.DEEPLAB_WORKER_IDLE_GC_MS;
    process.env.DEEPLAB_WORKER_IDLE_GC_MS = '200'; // a worker copies the environment when it starts
    const pool = new WorkerPool<TestTasks>(1, { taskModules: [TEST_TASKS] });
    try {
      const held = await pool.run('test.garbage', { mb: 768 });
      const slot = pool.workers[0];
      // An idle worker would keep the 768 MB until it allocates again (see lib/runtime/idle-gc).
      let rss = held;
      for (let i = 0; i < 100 && rss > held - (512 << 20); i++) {
        await sleep(500); // longer than the quiet time, so each poll (a job) is followed by a collection
        rss = (await engineMemory(slot)).rss;
      }
      assert.ok(rss <= held - (512 << 20), `RSS ${rss >> 20} MB after the quiet time, ${held >> 20} MB while the job held 768 MB`);
    } finally {
      await pool.close();
      if (before === undefined) delete process.env.DEEPLAB_WORKER_IDLE_GC_MS;
      else process.env.DEEPLAB_WORKER_IDLE_GC_MS = before;
    }
  });

  it('hands back the memory of a CRF\'s arguments and working buffers after one quiet spell', async () => {
    const before = process.env.DEEPLAB_WORKER_IDLE_GC_MS;
    process.env.DEEPLAB_WORKER_IDLE_GC_MS = '200';
    const pool = new WorkerPool(1);
    try {
      const s = scene(500, 400, 7, 21);
      const map = noisyLogits(s.labels, 21, 3); // 17 MB of scores, copied to the worker
      await crf({ map, image: s.image, params: { iterations: 2, w1: 5, thetaAlpha: 30, thetaBeta: 13, w2: 3, thetaGamma: 1 } }, pool);
      const slot = pool.workers[0];
      const held = (await engineMemory(slot)).external;
      // One quiet spell, so one idle collection (a poll is a job, followed by another collection:
      // none is polled until the end). A single gc() kept the last task's arguments.
      await sleep(1500);
      const after = (await engineMemory(slot)).external;
      assert.ok(after <= held - (12 << 20), `worker's external memory ${held >> 20} MB after the CRF, ${after >> 20} MB after the quiet time`);
    } finally {
      await pool.close();
      if (before === undefined) delete process.env.DEEPLAB_WORKER_IDLE_GC_MS;
      else process.env.DEEPLAB_WORKER_IDLE_GC_MS = before;
    }
  });
});
