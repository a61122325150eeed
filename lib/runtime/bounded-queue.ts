/**
 * A bounded work queue for live streams: one job runs at a time, a few wait, and when the
 * queue is full the policy decides what gives way, so a 30 fps camera never grows memory.
 */
export type QueuePolicy = 'drop-oldest' | 'drop-newest' | 'wait';
export const QUEUE_POLICIES: QueuePolicy[] = ['drop-oldest', 'drop-newest', 'wait'];

/** Under `wait` nothing is dropped; past this many waiting jobs new ones are refused. */
export const WAIT_HARD_LIMIT = 10_000;

export class BoundedQueue<T> {
  private readonly waiting: T[] = [];
  private running = 0;
  dropped = 0;
  processed = 0;

  constructor(
    private readonly limit: number,
    private readonly policy: QueuePolicy,
    private readonly run: (item: T) => Promise<void>,
    private readonly onDrop: (item: T, reason: string) => void,
    private readonly concurrency = 1,
  ) {
    if (!(Number.isInteger(limit) && limit >= 0)) throw new Error(`queue size must be an integer >= 0, got ${limit}`);
    if (!QUEUE_POLICIES.includes(policy)) throw new Error(`queue policy must be one of ${QUEUE_POLICIES.join(', ')}, got "${policy}"`);
  }

  get length(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running > 0;
  }

  push(item: T): void {
    if (this.running < this.concurrency) {
      this.start(item);
      return;
    }
    const cap = this.policy === 'wait' ? WAIT_HARD_LIMIT : this.limit;
    if (this.waiting.length >= cap) {
      this.dropped++;
      if (this.policy === 'drop-oldest' && this.waiting.length > 0) {
        this.onDrop(this.waiting.shift()!, 'dropped (oldest) because the queue is full');
        this.waiting.push(item);
      } else {
        this.onDrop(item, this.policy === 'wait' ? `refused: ${cap} messages already waiting` : 'dropped (newest) because the queue is full');
      }
      return;
    }
    this.waiting.push(item);
  }

  /** Drops everything still waiting (node close). */
  clear(reason = 'node closed'): void {
    for (const item of this.waiting.splice(0)) this.onDrop(item, reason);
  }

  private start(item: T): void {
    this.running++;
    this.run(item)
      .catch(() => undefined) // the runner reports its own errors
      .finally(() => {
        this.running--;
        this.processed++;
        const next = this.waiting.shift();
        if (next !== undefined) this.start(next);
      });
  }
}
