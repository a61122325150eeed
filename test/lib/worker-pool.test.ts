import { strict as assert } from 'assert';
import { backendName } from '../../lib/compute/client';
import { WorkerPool } from '../../lib/compute/pool';
import { TEST_TASKS, TestTasks } from '../helpers/test-tasks';

describe('lib/compute: the worker pool', () => {
  const pool = new WorkerPool<TestTasks>(2, { taskModules: [TEST_TASKS] });
  after(() => pool.close());

  it('reports the backend the workers run (wasm without tfjs-node)', async () => {
    const production = new WorkerPool(1);
    try {
      const name = await backendName(undefined, production);
      assert.ok(['tensorflow', 'wasm', 'cpu'].includes(name), name);
    } finally {
      await production.close();
    }
  });

  it('moves typed arrays as transferables both ways', async () => {
    const data = new Float32Array([1, 2, 3]);
    const out = await pool.run('test.echo', { data }, { transfer: [data.buffer] });
    assert.equal(data.length, 0, 'the sent view is detached (moved, not copied)');
    assert.deepEqual([...out.data], [1, 2, 3]);
  });

  it('rejects with the task error and keeps the worker alive', async () => {
    await assert.rejects(pool.run('test.fail', { message: 'boom' }), /boom/);
    await assert.rejects((pool as unknown as WorkerPool<{ 'no.such.task': () => { result: null } }>).run('no.such.task', null), /unknown worker task "no.such.task"/);
    assert.equal(await pool.run('test.sleep', { ms: 1 }), 1);
  });

  it('runs two tasks at the same time on its two workers (both pass one barrier)', async () => {
    // Each task blocks its worker until both have arrived: on one worker, or one after the other,
    // the first would leave on its timeout having seen only itself.
    const counter = new SharedArrayBuffer(4);
    const args = { counter, parties: 2, timeoutMs: 600_000 }; // a hang guard: worker start-up under load is slow
    const [a, b] = await Promise.all([pool.run('test.barrier', args), pool.run('test.barrier', args)]);
    assert.deepEqual([a, b], [2, 2]);
    assert.equal(pool.workers.length, 2);
    assert.equal(new Set(pool.workers.map((w) => w.id)).size, 2);
  });

  it('production workers have none of the test tasks', async () => {
    const production = new WorkerPool(1);
    try {
      const untyped = production as unknown as WorkerPool<TestTasks>;
      await assert.rejects(untyped.run('test.sleep', { ms: 1 }), /unknown worker task "test.sleep"/);
    } finally {
      await production.close();
    }
  });
});
