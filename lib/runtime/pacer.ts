/**
 * Flow pacing of one run (the dataset node's), so a slow flow is never flooded: at most `window`
 * samples in flight; each acknowledgement (a message back at the node's input) frees a slot.
 * Pure state, no timers and no data: the node drives it.
 */
export class Pacer {
  private nextIndex = 0;
  private inFlight = 0;
  private running = false;

  constructor(readonly count: number, readonly window: number) {
    if (!Number.isInteger(count) || count < 0) throw new Error(`count must be a non-negative integer, got ${count}`);
    if (!Number.isInteger(window) || window < 1) throw new Error(`window must be a positive integer, got ${window}`);
  }

  /** Starts (or restarts) the run; returns the indices to send now (none when paced by tick()). */
  start(timed = false): number[] {
    this.nextIndex = 0;
    this.inFlight = 0;
    this.running = true;
    return timed ? [] : this.fill();
  }

  /** A sample came back: returns the indices to send now. Extra acknowledgements are ignored. */
  ack(): number[] {
    if (!this.running) return [];
    if (this.inFlight > 0) this.inFlight--;
    return this.fill();
  }

  /** Interval pacing: the next index regardless of acknowledgements, or null at the end. */
  tick(): number | null {
    if (!this.running || this.nextIndex >= this.count) return null;
    return this.nextIndex++;
  }

  stop(): void {
    this.running = false;
  }

  /** Every sample sent. */
  get allSent(): boolean {
    return this.nextIndex >= this.count;
  }

  /** Every sample sent and every one acknowledged (the run is complete). */
  get done(): boolean {
    return this.running && this.nextIndex >= this.count && this.inFlight === 0;
  }

  get isRunning(): boolean {
    return this.running;
  }

  get sent(): number {
    return this.nextIndex;
  }

  get pending(): number {
    return this.inFlight;
  }

  private fill(): number[] {
    const out: number[] = [];
    while (this.running && this.inFlight < this.window && this.nextIndex < this.count) {
      out.push(this.nextIndex++);
      this.inFlight++;
    }
    return out;
  }
}
