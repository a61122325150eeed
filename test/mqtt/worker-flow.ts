/**
 * The inference worker of the scale-out tests, as example 07 builds it (written out here so the
 * tests do not depend on the example's layout):
 *
 *   mqtt in ($share/deeplab/deeplab/frames/+, QoS 1, Buffer) ─▶ deeplab-frame (decode, acks held)
 *     ─▶ deeplab-infer (queue: wait) ─▶ deeplab-upsample (labels) ─▶ deeplab-result ─▶ mqtt out
 *   complete (mqtt out) ─▶ deeplab-frame          (the published result releases the frame's PUBACK)
 *   catch (frame, infer, upsample, result) ─▶ deeplab-result   (an error result for a refused frame)
 *
 * The broker connection: MQTT v5, a fixed client id, clean session off, a session expiry and no
 * unsubscribe on close: the broker keeps the worker's subscription and its unacknowledged frames
 * while it is away.
 */
export interface WorkerFlowOptions {
  brokerPort: number;
  clientId: string;
  /** deeplab-infer's queue size (policy wait): at least the broker's in-flight window, so no held frame is refused as busy. */
  queueSize: number;
  /** deeplab-infer's input size (longest side) */
  size?: number;
}

export function workerFlow(o: WorkerFlowOptions): Record<string, unknown>[] {
  const z = 'w-tab';
  return [
    { id: z, type: 'tab', label: 'worker', disabled: false, info: '' },
    {
      id: 'w-broker', type: 'mqtt-broker', name: 'broker', broker: '127.0.0.1', port: String(o.brokerPort), clientid: o.clientId,
      autoConnect: true, usetls: false, protocolVersion: 5, keepalive: 15, cleansession: false, autoUnsubscribe: false,
      sessionExpiry: 3600, birthTopic: '', closeTopic: '', willTopic: '', userProps: '',
    },
    { id: 'w-model', type: 'deeplab-model', name: 'tiny v3+ (random weights)', variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classPreset: 'voc21' },
    { id: 'w-in', type: 'mqtt in', z, name: 'frames (shared)', topic: '$share/deeplab/deeplab/frames/+', qos: '1', datatype: 'buffer', broker: 'w-broker', nl: false, rap: true, rh: 0, inputs: 0, x: 140, y: 80, wires: [['w-frame']] },
    { id: 'w-frame', type: 'deeplab-frame', z, name: '', mode: 'decode', broker: 'w-broker', window: o.queueSize, x: 340, y: 80, wires: [['w-infer']] },
    { id: 'w-infer', type: 'deeplab-infer', z, name: '', model: 'w-model', size: o.size ?? 64, queueSize: o.queueSize, queuePolicy: 'wait', x: 540, y: 80, wires: [['w-up']] },
    { id: 'w-up', type: 'deeplab-upsample', z, name: '', result: 'labels', x: 740, y: 80, wires: [['w-result']] },
    { id: 'w-result', type: 'deeplab-result', z, name: '', model: 'w-model', x: 940, y: 80, wires: [['w-out'], ['w-out']] },
    { id: 'w-out', type: 'mqtt out', z, name: 'results', topic: '', qos: '', retain: '', broker: 'w-broker', x: 1140, y: 80, wires: [] },
    { id: 'w-done', type: 'complete', z, name: 'result published', scope: ['w-out'], uncaught: false, x: 340, y: 160, wires: [['w-frame']] },
    { id: 'w-catch', type: 'catch', z, name: 'refused frames', scope: ['w-frame', 'w-infer', 'w-up', 'w-result'], uncaught: false, x: 740, y: 160, wires: [['w-result']] },
  ];
}
