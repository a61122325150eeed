/**
 * Deferred MQTT acknowledgements: the PUBACK of a QoS 1 frame is held until its result has been
 * published, so a worker that dies mid-frame leaves the frame unacknowledged and the broker
 * delivers it again (to the same session when it comes back). The broker sends a client at most
 * its in-flight window of unacknowledged messages (Mosquitto: max_inflight_messages, or the MQTT
 * v5 receive maximum of the client), so holding acknowledgements is also the back-pressure: a
 * worker never holds more frames than that window.
 *
 * Held acknowledgements belong to one connection: when it closes they are dropped (never sent on
 * a later connection, where the packet id may mean another message); the broker redelivers those
 * messages after the reconnect.
 */
export type Release = () => void;

interface Held {
  owner: object;
  release: Release;
}

export class AckGate {
  private readonly held = new Map<string, Held[]>();

  /** Holds the acknowledgement of a message under key (FIFO per key: equal keys release oldest first). */
  hold(key: string, owner: object, release: Release): void {
    const list = this.held.get(key);
    if (list) list.push({ owner, release });
    else this.held.set(key, [{ owner, release }]);
  }

  /** Sends the oldest held acknowledgement under key; false when none is held (already released or dropped). */
  release(key: string): boolean {
    const list = this.held.get(key);
    const first = list?.shift();
    if (!first) return false;
    if (!list!.length) this.held.delete(key);
    first.release();
    return true;
  }

  /** Forgets every acknowledgement held for owner (its connection closed). Returns how many. */
  drop(owner: object): number {
    let n = 0;
    for (const [key, list] of this.held) {
      const keep = list.filter((h) => h.owner !== owner);
      n += list.length - keep.length;
      if (keep.length) this.held.set(key, keep);
      else this.held.delete(key);
    }
    return n;
  }

  get size(): number {
    let n = 0;
    for (const list of this.held.values()) n += list.length;
    return n;
  }
}

/** The key a frame is held and released under: its topic and frame id (user property `frame`). */
export function ackKey(topic: string, frameId: string | undefined): string {
  return `${topic}\u0000${frameId ?? ''}`;
}

/** MQTT topic filter matching (+ and #), for choosing which messages are held. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter;
  const fp = f.split('/');
  const tp = topic.split('/');
  for (let i = 0; i < fp.length; i++) {
    if (fp[i] === '#') return true;
    if (i >= tp.length) return false;
    if (fp[i] !== '+' && fp[i] !== tp[i]) return false;
  }
  return fp.length === tp.length;
}
