/**
 * A bounded work queue for live streams: `concurrency` jobs run, at most `limit` wait, and when
 * the queue is full the policy decides what gives way, so a 30 fps camera never grows memory.
 *
 * Nothing leaves the queue silently: every job that will not run (dropped by the policy,
 * refused because the queue is full, or cleared when its node closes) is handed to `onDrop`
 * with a QueueDropError whose `code` a flow can test (`msg.error.code` in a Catch node).
 */
export type QueuePolicy = 'drop-oldest' | 'drop-newest' | 'wait';
export const QUEUE_POLICIES: QueuePolicy[] = ['drop-oldest', 'drop-newest', 'wait'];

/** A message dropped by a drop policy, or cleared from the queue when its node closed. */
export const DROPPED_CODE = 'DEEPLAB_DROPPED';
/** A message refused under `wait`: the queue already holds its configured size (back-pressure). */
export const BUSY_CODE = 'DEEPLAB_BUSY';

export type DropReason = 'oldest' | 'newest' | 'busy' | 'cleared';

/**
 * Why a job did not run. `code` is an own property, so Node-RED copies it to `msg.error.code`
 * when the error reaches a Catch node.
 */
export class QueueDropError extends Error {
  readonly code: typeof DROPPED_CODE | typeof BUSY_CODE;
  constructor(message: string, readonly reason: DropReason) {
    super(message);
    this.name = 'QueueDropError';
    this.code = reason === 'busy' ? BUSY_CODE : DROPPED_CODE;
  }
}

export class BoundedQueue<T> {
  private readonly waiting: T[] = [];
  private running = 0;
  /** Jobs dropped by the policy or cleared (not counting refusals under `wait`). */
  dropped = 0;
  /** Jobs refused under `wait` because `limit` were already waiting. */
  refused = 0;
  processed = 0;

  constructor(
    readonly limit: number,
    readonly policy: QueuePolicy,
    private readonly run: (item: T) => Promise<void>,
    private readonly onDrop: (item: T, err: QueueDropError) => void,
    private readonly concurrency = 1,
  ) {
    if (!(Number.isInteger(limit) && limit >= 0)) throw new Error(`queue size must be an integer >= 0, got ${limit}`);
    if (!QUEUE_POLICIES.includes(policy)) throw new Error(`queue policy must be one of ${QUEUE_POLICIES.join(', ')}, got "${policy}"`);
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new Error(`queue concurrency must be an integer >= 1, got ${concurrency}`);
  }

  /** Jobs waiting (not counting those running). */
  get length(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running > 0;
  }

  /** Runs the job now, queues it, or (queue full) lets the policy decide which job gives way. */
  push(item: T): void {
    if (this.running < this.concurrency) {
      this.start(item);
      return;
    }
    if (this.waiting.length < this.limit) {
      this.waiting.push(item);
      return;
    }
    const size = `queue size ${this.limit}, policy ${this.policy}`;
    if (this.policy === 'wait') {
      this.refused++;
      this.drop(item, new QueueDropError(`refused: ${this.limit} message${this.limit === 1 ? '' : 's'} already waiting (${size}); send slower, retry later, or raise the queue size`, 'busy'));
    } else if (this.policy === 'drop-oldest' && this.waiting.length > 0) {
      const oldest = this.waiting.shift()!;
      this.waiting.push(item);
      this.dropped++;
      this.drop(oldest, new QueueDropError(`dropped: a newer message arrived while the queue was full (${size})`, 'oldest'));
    } else {
      this.dropped++;
      this.drop(item, new QueueDropError(`dropped: the queue was full (${size})`, 'newest'));
    }
  }

  /** Drops everything still waiting (node close); each job gets its error. */
  clear(why = 'the node was closed (redeploy or shutdown)'): void {
    for (const item of this.waiting.splice(0)) {
      this.dropped++;
      this.drop(item, new QueueDropError(`dropped: ${why} before this message ran`, 'cleared'));
    }
  }

  private drop(item: T, err: QueueDropError): void {
    try {
      this.onDrop(item, err);
    } catch {
      // A failing reporter must not break the queue for the jobs after it.
    }
  }

  private start(item: T): void {
    this.running++;
    let job: Promise<void>;
    try {
      job = this.run(item);
    } catch (err) {
      job = Promise.reject(err);
    }
    job
      .catch(() => undefined) // the runner reports its own errors
      .finally(() => {
        this.running--;
        this.processed++;
        const next = this.waiting.shift();
        if (next !== undefined) this.start(next);
      });
  }
}
