import { strict as assert } from 'assert';
import { WorkerPool } from '../../lib/worker/pool';

describe('lib/worker: compute worker pool', () => {
  const pool = new WorkerPool(2);
  after(() => pool.close());

  it('reports the backend the workers run (wasm without tfjs-node)', async () => {
    const name = await pool.backendName();
    assert.ok(['tensorflow', 'wasm', 'cpu'].includes(name), name);
  });

  it('moves typed arrays as transferables both ways', async () => {
    const data = new Float32Array([1, 2, 3]);
    const out = await pool.run<{ data: Float32Array }>('engine.echo', { data }, { transfer: [data.buffer] });
    assert.equal(data.length, 0, 'the sent view is detached (moved, not copied)');
    assert.deepEqual([...out.data], [1, 2, 3]);
  });

  it('rejects with the task error and keeps the worker alive', async () => {
    await assert.rejects(pool.run('engine.fail', { message: 'boom' }), /boom/);
    await assert.rejects(pool.run('no.such.task', {}), /unknown worker task "no.such.task"/);
    assert.equal(await pool.run('engine.sleep', { ms: 1 }), 1);
  });

  it('spreads concurrent tasks over its workers', async () => {
    const p1 = pool.run('engine.sleep', { ms: 200 });
    const p2 = pool.run('engine.sleep', { ms: 200 });
    assert.equal(pool.workers.length, 2);
    await Promise.all([p1, p2]);
  });
});
