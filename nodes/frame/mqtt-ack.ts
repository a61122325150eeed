/**
 * Holding the PUBACK of frames until their result is published, on Node-RED's own mqtt-broker
 * config node (QoS 1; a QoS 2 frame is acknowledged on receipt as before). Node-RED 4.1's mqtt-in acknowledges a QoS 1 message as soon as it arrives
 * (MQTT.js calls client.handleMessage(packet, done) right after emitting 'message', and the
 * default handleMessage calls done at once), and its receiveMaximum setting is never put into the
 * CONNECT packet. So a worker built from mqtt-in alone holds an unbounded number of frames and
 * loses them all when it dies. This hook wraps handleMessage and _sendPacket of the broker node's
 * MQTT.js client: the PUBACK of a QoS 1 message on the frames topic is kept in an AckGate until
 * deeplab-frame is handed the published result (a Complete node on mqtt-out).
 *
 * It relies on the broker node's `client` and `connect` (10-mqtt.js, Node-RED 4.x) and on
 * MQTT.js 5's `handleMessage` and `_sendPacket`. All are checked; where one is absent the hook
 * does nothing and deeplab-frame's status says acknowledgements cannot be held.
 */
import type { Node } from 'node-red';
import { ackKey, AckGate, topicMatches } from '../../lib/transport/ack-gate';

interface Packet {
  topic: string;
  qos: number;
  properties?: { userProperties?: Record<string, string | string[]> };
}
interface PubackPacket {
  cmd: string;
  messageId?: number;
}
type SendPacket = (packet: PubackPacket, cb?: (err?: Error) => void, cbStorePut?: unknown) => void;
interface MqttClientLike {
  handleMessage: (packet: Packet & { messageId?: number }, callback: (err?: Error) => void) => void;
  _sendPacket?: SendPacket;
  on(event: 'close', cb: () => void): void;
}
export interface BrokerNodeLike extends Node {
  client?: MqttClientLike;
  connect?: (...args: unknown[]) => unknown;
}

interface BrokerHook {
  gate: AckGate;
  /** frames topic filters of the deeplab-frame nodes holding acknowledgements on this broker */
  filters: Map<string, string>;
  /** told when a connection closes (its held acknowledgements are void) */
  onClose: Map<string, () => void>;
  hooked: WeakSet<object>;
}

const hooks = new WeakMap<object, BrokerHook>();

function hookClient(hook: BrokerHook, client: MqttClientLike): boolean {
  if (hook.hooked.has(client)) return true;
  if (typeof client._sendPacket !== 'function' || typeof client.handleMessage !== 'function') return false;
  hook.hooked.add(client);
  // MQTT.js reads packets one after the other and goes on to the next only when the PUBACK of a
  // QoS 1 message has been written: holding handleMessage's callback would stall every packet
  // behind it (PINGRESP, the PUBACKs of our own results: a deadlock, then a keep-alive timeout).
  // So the callback runs at once and only the PUBACK packet itself is kept back.
  const send = client._sendPacket.bind(client);
  const waiting = new Map<number, PubackPacket | null>();
  const handle = client.handleMessage.bind(client);
  client.handleMessage = (packet, callback) => {
    const id = packet.messageId;
    const held = packet.qos === 1 && id !== undefined && [...hook.filters.values()].some((f) => topicMatches(f, packet.topic));
    if (held) {
      waiting.set(id, null);
      const frame = packet.properties?.userProperties?.frame;
      hook.gate.hold(ackKey(packet.topic, Array.isArray(frame) ? frame[0] : frame), client, () => {
        const puback = waiting.get(id);
        waiting.delete(id);
        if (puback) send(puback);
      });
    }
    handle(packet, callback);
  };
  client._sendPacket = (packet, cb, cbStorePut) => {
    if (packet.cmd === 'puback' && packet.messageId !== undefined && waiting.has(packet.messageId)) {
      waiting.set(packet.messageId, packet);
      cb?.(); // MQTT.js goes on reading; the PUBACK goes out when the result is published
      return;
    }
    send(packet, cb, cbStorePut);
  };
  // Acknowledgements of a closed connection are void: the broker redelivers after the reconnect.
  client.on('close', () => {
    hook.gate.drop(client);
    waiting.clear();
    for (const cb of hook.onClose.values()) cb();
  });
  return true;
}

/**
 * Starts holding acknowledgements of messages matching filter on broker for holder (a
 * deeplab-frame node); returns the gate, or undefined where the broker node is not the shape
 * this hook knows.
 */
export function holdAcks(broker: BrokerNodeLike, holder: string, filter: string, onClose?: () => void): AckGate | undefined {
  if (typeof broker.connect !== 'function') return undefined;
  let hook = hooks.get(broker);
  if (!hook) {
    const created: BrokerHook = { gate: new AckGate(), filters: new Map(), onClose: new Map(), hooked: new WeakSet() };
    hook = created;
    hooks.set(broker, created);
    const connect = broker.connect.bind(broker);
    broker.connect = (...args: unknown[]) => {
      const r = connect(...args);
      if (broker.client) hookClient(created, broker.client);
      return r;
    };
  }
  hook.filters.set(holder, filter);
  if (onClose) hook.onClose.set(holder, onClose);
  if (broker.client && !hookClient(hook, broker.client)) return undefined;
  return hook.gate;
}

/** Stops holding for holder. Acknowledgements already held stay held until released or their connection closes. */
export function stopHolding(broker: BrokerNodeLike, holder: string): void {
  hooks.get(broker)?.filters.delete(holder);
  hooks.get(broker)?.onClose.delete(holder);
}
