/**
 * deeplab-frame: the MQTT frame envelope (lib/transport/envelope) to an image and back.
 *  - decode ("MQTT frame -> image"), after an mqtt-in node: checks the user properties and the
 *    picture's header, decodes it to a RawImage in msg.payload, the frame's facts in msg.frame.
 *    With a broker selected it holds the frame's QoS 1 acknowledgement until the result comes
 *    back to it (wire a Complete node on the results' mqtt-out node into this node).
 *  - encode ("image -> MQTT frame"), before an mqtt-out node: an encoded picture or a RawImage
 *    becomes the payload, topic deeplab/frames/<camera>, user properties, QoS 1.
 */
import sharp from 'sharp';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, describeValue, isRawImage, expectRawImage } from '../../lib/contract';
import { encodeImage } from '../../lib/data/image';
import { ackKey, AckGate } from '../../lib/transport/ack-gate';
import {
  cameraOf, checkCameraId, checkTopicPrefix, decodeFrame, FrameMeta, FRAMES_TOPIC, frameTopic, frameUserProperties, readFrameMeta, UserProperties,
} from '../../lib/transport/envelope';
import { Msg, onInput, Send, readConfig, requireConfig, setStatus } from '../_shared/node-kit';
import { intProp, numberProp, stringProp } from '../_shared/props';
import { BrokerNodeLike, holdAcks, stopHolding } from './mqtt-ack';
import { WireFrame, WORKER_NAME } from './wire-frame';

interface FrameProps {
  mode?: string;
  camera?: string;
  topicPrefix?: string;
  quality?: string | number;
  maxMegapixels?: string | number;
  broker?: string;
  /** frames let into the pipeline at once, unanswered (0: no limit) */
  window?: string | number;
}

export = function register(RED: NodeAPI): void {
  function DeeplabFrame(this: Node, def: NodeDef & FrameProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readConfig(node, () => ({
      mode: stringProp(def.mode, 'decode', ['decode', 'encode'] as const),
      // Ranges: keep in step with nodes/frame/frame.html.
      camera: (def.camera ?? '').trim() ? checkCameraId((def.camera ?? '').trim()) : '',
      topicPrefix: (def.topicPrefix ?? '').trim() ? checkTopicPrefix((def.topicPrefix ?? '').trim()) : FRAMES_TOPIC,
      quality: intProp(def.quality, 85, 'JPEG quality', { min: 1, max: 100 }),
      maxPixels: Math.round(numberProp(def.maxMegapixels, 40, 'largest (megapixels)', { min: 0, minExclusive: true, max: 1000 }) * 1e6),
      broker: def.broker ? (RED.nodes.getNode(def.broker) as BrokerNodeLike | null) : undefined,
      window: intProp(def.window, def.broker ? 4 : 0, 'window', { min: 0, max: 100000 }),
    }));
    let gate: AckGate | undefined;
    if (cfg?.mode === 'decode' && def.broker) {
      if (!cfg.broker) {
        setStatus(node, 'error', 'broker config node missing');
      } else {
        gate = holdAcks(cfg.broker, node.id, `${cfg.topicPrefix}/+`, () => connectionClosed());
        if (!gate) setStatus(node, 'warn', 'this mqtt-broker node cannot hold acknowledgements');
      }
    }
    let decoded = 0;
    let failed = 0;
    let answered = 0;
    const counters = new Map<string, number>();
    const holding = () => (gate ? ` · ${gate.size} unacked` : '') + (waiting.length ? ` · ${waiting.length} waiting` : '')
      + (redelivered ? ` · ${redelivered} left to redelivery` : '');
    // The window: at most `window` frames in the pipeline, unanswered; the next waits here, still
    // undecoded and unacknowledged. The broker's in-flight window should already keep it so, but
    // Mosquitto before 2.0.13 miscounts it when acknowledgements are late (it sends more).
    // A slot is freed when its result comes back, or when the connection it came on closes: then
    // the broker delivers its frame again, and mqtt-out drops results it cannot publish (no
    // completion ever comes for them).
    let nextSlot = 0;
    const inPipeline = new Set<number>();
    const waiting: { admit: (slot: number) => void; drop: () => void }[] = [];
    let redelivered = 0;
    const enter = (): Promise<number | undefined> | number => {
      const slot = ++nextSlot;
      if (!cfg?.window || inPipeline.size < cfg.window) {
        inPipeline.add(slot);
        return slot;
      }
      return new Promise((resolve) => waiting.push({ admit: (s) => resolve(s), drop: () => resolve(undefined) }));
    };
    const pump = () => {
      while (waiting.length && (!cfg?.window || inPipeline.size < cfg.window)) {
        const slot = ++nextSlot;
        inPipeline.add(slot);
        waiting.shift()!.admit(slot);
      }
    };
    const leave = (slot: number | undefined) => {
      if (slot !== undefined && inPipeline.delete(slot)) pump();
    };
    const connectionClosed = () => {
      // Frames not yet answered will come again from the broker: forget them here.
      redelivered += waiting.length;
      for (const w of waiting.splice(0)) w.drop();
      inPipeline.clear();
    };

    onInput(node, async (msg: Msg, send) => {
      const o = requireConfig(cfg);
      if (o.mode === 'encode') return encode(msg, o, send);
      const back = msg.frame as WireFrame | undefined;
      if (back && typeof back === 'object' && typeof back.receivedAt === 'number') {
        // A result coming back (Complete on mqtt-out): its frame is answered.
        if (back.picture) return;
        answered++;
        if (back.ack !== undefined && gate) gate.release(back.ack);
        leave(back.slot);
        setStatus(node, 'ok', `${decoded} frames · ${answered} answered · ${failed} refused${holding()}`);
        return;
      }
      const entered = enter();
      const slot = typeof entered === 'number' ? entered : await entered;
      if (slot === undefined) return; // its connection closed while it waited: the broker sends it again
      const topic = typeof msg.topic === 'string' ? msg.topic : '';
      const props = msg.userProperties as UserProperties | undefined;
      const frameProp = props?.frame;
      const frame: WireFrame = { receivedAt: Date.now(), worker: WORKER_NAME, camera: cameraOf(props, topic), slot };
      if (gate && (msg.qos as number) > 0) frame.ack = ackKey(topic, Array.isArray(frameProp) ? frameProp[0] : frameProp);
      if (typeof frameProp === 'string') frame.frameId = frameProp;
      // Set before anything can fail: the Catch node's error result needs the camera and frame id.
      msg.frame = frame;
      try {
        const meta = readFrameMeta(props, topic);
        Object.assign(frame, meta);
        msg.payload = await decodeFrame(msg.payload, meta, o.maxPixels);
      } catch (err) {
        failed++;
        setStatus(node, 'error', `${decoded} frames · ${failed} refused: ${(err as Error).message}`);
        throw err;
      }
      decoded++;
      setStatus(node, 'busy', `${decoded} frames · ${answered} answered · ${failed} refused${holding()}`);
      send(msg);
    });

    async function encode(msg: Msg, o: NonNullable<typeof cfg>, send: Send): Promise<void> {
      const camera = typeof msg.camera === 'string' && msg.camera ? msg.camera : o.camera;
      if (!camera) throw new ContractError('no camera id: set the node\'s Camera or msg.camera');
      let bytes: Buffer;
      let width: number;
      let height: number;
      if (isRawImage(msg.payload)) {
        const img = expectRawImage(msg.payload, 'msg.payload');
        bytes = await encodeImage(img, 'jpeg', o.quality);
        ({ width, height } = img);
      } else if (Buffer.isBuffer(msg.payload)) {
        bytes = msg.payload;
        let meta;
        try {
          meta = await sharp(bytes, { limitInputPixels: false }).metadata();
        } catch (err) {
          throw new ContractError(`msg.payload is not a picture sharp can read (${(err as Error).message})`);
        }
        if (meta.format !== 'jpeg' && meta.format !== 'png') throw new ContractError(`frames travel as JPEG or PNG; msg.payload is ${meta.format}: decode it to a RawImage first`);
        width = meta.width ?? 0;
        height = meta.height ?? 0;
      } else {
        throw new ContractError(`msg.payload: expected a JPEG/PNG Buffer or a RawImage, got ${describeValue(msg.payload)}`);
      }
      const n = (counters.get(camera) ?? 0) + 1;
      counters.set(camera, n);
      const frameId = msg.frameId !== undefined ? String(msg.frameId) : String(n);
      const captureTime = typeof msg.captureTime === 'number' ? msg.captureTime : Date.now();
      const meta: FrameMeta = { camera, frameId, captureTime, width, height };
      msg.topic = frameTopic(camera, o.topicPrefix);
      msg.payload = bytes;
      msg.userProperties = frameUserProperties(meta);
      msg.contentType = bytes[0] === 0x89 ? 'image/png' : 'image/jpeg';
      msg.qos = 1;
      msg.retain = false;
      decoded++;
      setStatus(node, 'ok', `${decoded} frames · ${camera} #${frameId} ${width}x${height}`);
      send(msg);
    }

    node.on('close', () => {
      if (cfg?.broker) stopHolding(cfg.broker, node.id);
    });
  }
  RED.nodes.registerType('deeplab-frame', DeeplabFrame);
};
