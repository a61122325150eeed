/** The bounded queue: what runs, what waits, and that every job that will not run is reported with its code. */
import { strict as assert } from 'assert';
import { BoundedQueue, BUSY_CODE, DROPPED_CODE, QueueDropError, QueuePolicy } from '../../lib/runtime/bounded-queue';

/** A queue whose jobs finish only when the test says so. */
function harness(limit: number, policy: QueuePolicy, concurrency = 1) {
  const started: number[] = [];
  const finishers = new Map<number, () => void>();
  const drops: { item: number; err: QueueDropError }[] = [];
  const q = new BoundedQueue<number>(limit, policy, (item) => new Promise<void>((resolve) => {
    started.push(item);
    finishers.set(item, resolve);
  }), (item, err) => drops.push({ item, err }), concurrency);
  const finish = async (item: number) => {
    finishers.get(item)!();
    // The next job starts in the settled promise's callbacks.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { q, started, drops, finish };
}

describe('lib/runtime: bounded queue', () => {
  it('drop-oldest: the running job and the newest `limit` jobs survive; each dropped one is reported once with DEEPLAB_DROPPED', async () => {
    const h = harness(2, 'drop-oldest');
    for (let i = 0; i < 200; i++) h.q.push(i);
    assert.deepEqual(h.started, [0]);
    assert.equal(h.q.length, 2);
    assert.deepEqual(h.drops.map((d) => d.item), Array.from({ length: 197 }, (_, i) => i + 1));
    for (const d of h.drops) {
      assert.ok(d.err instanceof Error && d.err instanceof QueueDropError);
      assert.equal(d.err.code, DROPPED_CODE);
      assert.ok(Object.prototype.hasOwnProperty.call(d.err, 'code'), 'an own property (Node-RED copies own `code` to msg.error.code)');
      assert.match(d.err.message, /queue size 2, policy drop-oldest/);
    }
    assert.equal(h.q.dropped, 197);
    await h.finish(0);
    await h.finish(198);
    await h.finish(199);
    assert.deepEqual(h.started, [0, 198, 199]);
    assert.equal(h.q.processed, 3);
  });

  it('drop-newest: the arriving job is the one dropped', () => {
    const h = harness(1, 'drop-newest');
    for (let i = 0; i < 4; i++) h.q.push(i);
    assert.deepEqual(h.started, [0]);
    assert.deepEqual(h.drops.map((d) => [d.item, d.err.code, d.err.reason]), [[2, DROPPED_CODE, 'newest'], [3, DROPPED_CODE, 'newest']]);
  });

  it('wait: holds at most the queue size, refuses the rest at once with DEEPLAB_BUSY, and drops nothing it accepted', async () => {
    const h = harness(2, 'wait');
    for (let i = 0; i < 40; i++) h.q.push(i);
    assert.deepEqual(h.started, [0]);
    assert.equal(h.q.length, 2);
    assert.equal(h.drops.length, 37);
    assert.ok(h.drops.every((d) => d.err.code === BUSY_CODE && d.err.reason === 'busy'));
    assert.equal(h.q.refused, 37);
    assert.equal(h.q.dropped, 0);
    // Room again once one finishes: the next push waits instead of being refused.
    await h.finish(0);
    h.q.push(40);
    assert.equal(h.drops.length, 37);
    assert.deepEqual(h.started, [0, 1]);
    await h.finish(1);
    await h.finish(2);
    await h.finish(40);
    assert.deepEqual(h.started, [0, 1, 2, 40]);
  });

  it('queue size 0: only the running job, everything else is refused or dropped', () => {
    const w = harness(0, 'wait');
    const d = harness(0, 'drop-oldest');
    for (let i = 0; i < 3; i++) {
      w.q.push(i);
      d.q.push(i);
    }
    assert.deepEqual(w.drops.map((x) => [x.item, x.err.code]), [[1, BUSY_CODE], [2, BUSY_CODE]]);
    assert.deepEqual(d.drops.map((x) => [x.item, x.err.code]), [[1, DROPPED_CODE], [2, DROPPED_CODE]]);
  });

  it('clear() reports every waiting job as dropped and leaves the running one alone', async () => {
    const h = harness(3, 'wait');
    for (let i = 0; i < 4; i++) h.q.push(i);
    h.q.clear();
    assert.deepEqual(h.drops.map((d) => [d.item, d.err.code, d.err.reason]), [[1, DROPPED_CODE, 'cleared'], [2, DROPPED_CODE, 'cleared'], [3, DROPPED_CODE, 'cleared']]);
    assert.match(h.drops[0].err.message, /closed/);
    await h.finish(0);
    assert.deepEqual(h.started, [0]);
  });

  it('concurrency 2 runs two jobs at once; a runner that throws synchronously does not stall the queue', async () => {
    const h = harness(1, 'drop-oldest', 2);
    for (let i = 0; i < 4; i++) h.q.push(i);
    assert.deepEqual(h.started, [0, 1]);
    assert.deepEqual(h.drops.map((d) => d.item), [2]);
    let ran = 0;
    const q = new BoundedQueue<number>(1, 'wait', (i) => {
      ran++;
      if (i === 0) throw new Error('sync failure');
      return Promise.resolve();
    }, () => undefined);
    q.push(0);
    q.push(1);
    for (let i = 0; i < 10; i++) await Promise.resolve();
    assert.equal(ran, 2);
  });

  it('refuses a bad configuration', () => {
    assert.throws(() => new BoundedQueue(-1, 'wait', async () => undefined, () => undefined), /queue size/);
    assert.throws(() => new BoundedQueue(1, 'lifo' as QueuePolicy, async () => undefined, () => undefined), /queue policy/);
    assert.throws(() => new BoundedQueue(1, 'wait', async () => undefined, () => undefined, 0), /concurrency/);
  });
});
