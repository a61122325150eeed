/**
 * Holding the PUBACK of frames until their result is published, on Node-RED's own mqtt-broker
 * config node. Node-RED 4.1's mqtt-in acknowledges a QoS 1 message as soon as it arrives
 * (MQTT.js calls client.handleMessage(packet, done) right after emitting 'message', and the
 * default handleMessage calls done at once), and its receiveMaximum setting is never put into the
 * CONNECT packet. So a worker built from mqtt-in alone holds an unbounded number of frames and
 * loses them all when it dies. This hook replaces handleMessage on the broker node's MQTT.js
 * client: a QoS >= 1 message on the frames topic keeps its acknowledgement in an AckGate until
 * deeplab-frame is handed the published result (a Complete node on mqtt-out).
 *
 * It relies on two properties of the broker node (10-mqtt.js): `client` (the MQTT.js client,
 * created in `connect()`) and `connect`. Both are checked; where they are absent the hook does
 * nothing and the status says so.
 */
import type { Node } from 'node-red';
import { ackKey, AckGate, topicMatches } from '../../lib/transport/ack-gate';

interface Packet {
  topic: string;
  qos: number;
  properties?: { userProperties?: Record<string, string | string[]> };
}
interface MqttClientLike {
  handleMessage: (packet: Packet, callback: (err?: Error) => void) => void;
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
  hooked: WeakSet<object>;
}

const hooks = new WeakMap<object, BrokerHook>();

function hookClient(hook: BrokerHook, client: MqttClientLike): void {
  if (hook.hooked.has(client)) return;
  hook.hooked.add(client);
  const original = client.handleMessage.bind(client);
  client.handleMessage = (packet, callback) => {
    const held = packet.qos > 0 && [...hook.filters.values()].some((f) => topicMatches(f, packet.topic));
    if (!held) return original(packet, callback);
    const frame = packet.properties?.userProperties?.frame;
    hook.gate.hold(ackKey(packet.topic, Array.isArray(frame) ? frame[0] : frame), client, () => original(packet, callback));
  };
  // Acknowledgements of a closed connection are void: the broker redelivers after the reconnect.
  client.on('close', () => hook.gate.drop(client));
}

/**
 * Starts holding acknowledgements of messages matching filter on broker for holder (a
 * deeplab-frame node); returns the gate, or undefined where the broker node is not the shape
 * this hook knows.
 */
export function holdAcks(broker: BrokerNodeLike, holder: string, filter: string): AckGate | undefined {
  if (typeof broker.connect !== 'function') return undefined;
  let hook = hooks.get(broker);
  if (!hook) {
    const created: BrokerHook = { gate: new AckGate(), filters: new Map(), hooked: new WeakSet() };
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
  if (broker.client) hookClient(hook, broker.client);
  return hook.gate;
}

/** Stops holding for holder. Acknowledgements already held stay held until released or their connection closes. */
export function stopHolding(broker: BrokerNodeLike, holder: string): void {
  hooks.get(broker)?.filters.delete(holder);
}
