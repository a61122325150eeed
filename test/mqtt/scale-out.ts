/**
 * The scale-out scenarios, shared by test/mqtt/scale-out.test.ts (bounded, in CI) and
 * bench/mqtt.ts (the full table): a Mosquitto broker, N Node-RED worker processes from the
 * packed package (test/e2e/harness), and this process as the cameras (publishing frames with
 * the envelope of lib/transport) and as the collector (subscribed to deeplab/results/+).
 * Every figure comes from frame ids and the broker's own behaviour, not from the workers'
 * word: a frame is answered when its result arrives here.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { freePort, installPackage, NodeRed, OUT, sleep, waitFor, HANG_MS } from '../e2e/harness';
import { frameTopic, frameUserProperties, ResultSummary } from '../../lib/transport/envelope';
import { Broker } from './broker';
import { workerFlow } from './worker-flow';

// MQTT.js comes with Node-RED (the package the mqtt nodes use).
const mqtt = require(require.resolve('mqtt', { paths: [path.dirname(require.resolve('node-red/package.json'))] })) as {
  connect(url: string, opts: Record<string, unknown>): MqttClient;
};
interface MqttClient {
  on(event: 'message', cb: (topic: string, payload: Buffer, packet: { properties?: { userProperties?: Record<string, string> } }) => void): void;
  on(event: string, cb: (...a: unknown[]) => void): void;
  subscribeAsync(topic: string, opts: Record<string, unknown>): Promise<unknown>;
  publishAsync(topic: string, payload: Buffer, opts: Record<string, unknown>): Promise<unknown>;
  endAsync(force?: boolean): Promise<void>;
  connected: boolean;
}

export const SHARED_FILTER = '$share/deeplab/deeplab/frames/+';

export interface Received {
  summary: ResultSummary;
  png: Buffer;
  at: number;
}

export interface ScenarioOptions {
  workers: number;
  cameras: number;
  framesPerCamera: number;
  /** the broker's in-flight window per client (max_inflight_messages) = deeplab-infer's queue size */
  inflight?: number;
  /** deeplab-infer input size */
  size?: number;
  /** what happens mid-stream, once this fraction of the frames is answered */
  disrupt?: 'none' | 'kill-worker' | 'kill-worker-no-restart' | 'restart-broker';
  disruptAt?: number;
  /** malformed frames published amid the stream (not an image, a 30000x30000 header, no properties) */
  malformed?: boolean;
  /** how long to wait for the last answers after the stream, where frames may be lost (ms) */
  settleMs?: number;
  log?: (s: string) => void;
}

export interface ScenarioReport {
  workers: number;
  frames: number;
  answered: number;
  lost: number;
  duplicated: number;
  /** answered out of frame order per camera (a later frame's result arrived first) */
  outOfOrder: number;
  perWorker: Record<string, number>;
  framesPerSecond: number;
  latencyP50: number;
  latencyP99: number;
  /** the longest time without a result during the stream (the disruption's gap), ms */
  gapMs: number;
  errors: ResultSummary[];
  results: Received[];
  workerErrors: string[];
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** A 30000x30000 PNG: a valid header, then one row of pixels and the end (decoding it would need 2.7 GB). */
export function hugePngHeader(): Buffer {
  const zlib = require('zlib') as typeof import('zlib');
  const chunk = (type: string, body: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const tb = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(tb) >>> 0);
    return Buffer.concat([len, tb, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30000, 0);
  ihdr.writeUInt32BE(30000, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(1 + 30000 * 3))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function cameraPicture(seed: number, width: number, height: number): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed * 2654435761 >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s >>> 16) & 255;
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
}

export async function workerUserDir(name: string): Promise<string> {
  const installed = await installPackage();
  const dir = path.join(OUT, 'mqtt', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(path.join(installed, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  fs.copyFileSync(path.join(installed, 'package.json'), path.join(dir, 'package.json'));
  // Node-RED's mqtt reconnect period is 5 s by default; 1 s keeps the broker-restart scenario short.
  const settings = fs.readFileSync(path.join(installed, 'settings.js'), 'utf8').replace('module.exports = {', 'module.exports = {\n  mqttReconnectTime: 1000,');
  fs.writeFileSync(path.join(dir, 'settings.js'), settings);
  return dir;
}

class Worker {
  red: NodeRed;
  constructor(readonly name: string, readonly dir: string, port: number) {
    this.red = new NodeRed(dir, port, { DEEPLAB_WORKER: name });
  }
  /** Starts (or restarts after a kill) the same worker: same user directory, flows file and client id. */
  async restart(): Promise<void> {
    this.red = new NodeRed(this.dir, this.red.port, { DEEPLAB_WORKER: this.name });
    await this.red.start();
  }
}

export async function runScenario(o: ScenarioOptions): Promise<ScenarioReport> {
  const log = o.log ?? (() => undefined);
  const inflight = o.inflight ?? 4;
  await installPackage(); // first: it clears this run's folder, where the broker keeps its files
  const broker = new Broker(path.join(OUT, 'mqtt', `broker-${Date.now()}`), { maxInflight: inflight });
  await broker.start();
  const workers: Worker[] = [];
  let collector: MqttClient | undefined;
  let camera: MqttClient | undefined;
  try {
    for (let i = 0; i < o.workers; i++) {
      const name = `worker-${i + 1}`;
      const w = new Worker(name, await workerUserDir(name), await freePort());
      workers.push(w);
    }
    // Started one after the other: two Node-RED processes loading at once on two cores double the wait, not halve it.
    for (const w of workers) {
      await w.red.start();
      await w.red.deploy(workerFlow({ brokerPort: broker.port, clientId: w.name, queueSize: inflight, size: o.size }));
    }
    await broker.waitSubscribed(SHARED_FILTER, workers.map((w) => w.name));
    log(`broker on ${broker.port}, ${o.workers} workers subscribed`);

    // The collector: a persistent session too, so results published while the broker restarts are not missed.
    const results: Received[] = [];
    collector = mqtt.connect(broker.url, { protocolVersion: 5, clientId: 'collector', clean: false, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 500 });
    await waitFor('the collector to connect', () => collector!.connected, 30_000, 20);
    collector.on('message', (topic, payload, packet) => {
      const json = packet.properties?.userProperties?.result;
      if (!json || !topic.startsWith('deeplab/results/')) return;
      results.push({ summary: JSON.parse(json) as ResultSummary, png: payload, at: Date.now() });
    });
    await collector.subscribeAsync('deeplab/results/+', { qos: 1 });
    camera = mqtt.connect(broker.url, { protocolVersion: 5, clientId: 'cameras', clean: false, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 500 });
    await waitFor('the cameras to connect', () => camera!.connected, 30_000, 20);

    const pictures = await Promise.all(Array.from({ length: o.cameras }, (_, c) => cameraPicture(c + 1, 64, 48)));
    const publishedAt = new Map<string, number>();
    const total = o.cameras * o.framesPerCamera;
    const answeredGood = () => new Set(results.filter((r) => r.summary.ok).map((r) => `${r.summary.camera}/${r.summary.frameId}`)).size;

    let disrupted: Promise<void> = Promise.resolve();
    const disruptAfter = Math.floor(total * (o.disruptAt ?? 0.3));
    const watch = (async () => {
      if (!o.disrupt || o.disrupt === 'none') return;
      await waitFor('the stream to reach the disruption point', () => answeredGood() >= disruptAfter, HANG_MS, 10);
      if (o.disrupt === 'kill-worker' || o.disrupt === 'kill-worker-no-restart') {
        log(`SIGKILL ${workers[0].name} after ${answeredGood()} answers`);
        await workers[0].red.kill();
        if (o.disrupt === 'kill-worker') {
          await sleep(1000);
          await workers[0].restart();
          log(`${workers[0].name} restarted`);
        }
      } else if (o.disrupt === 'restart-broker') {
        log(`broker stopped after ${answeredGood()} answers`);
        await broker.stop();
        await sleep(1000);
        await broker.start();
        log('broker started again');
      }
    })();
    disrupted = watch;

    // The cameras: every frame at once, round robin over the cameras (the broker queues; workers hold their window).
    const publishes: Promise<unknown>[] = [];
    const malformedAt = Math.floor(o.framesPerCamera / 2);
    for (let f = 1; f <= o.framesPerCamera; f++) {
      for (let c = 0; c < o.cameras; c++) {
        const cam = `cam${c + 1}`;
        const meta = { camera: cam, frameId: String(f), captureTime: Date.now(), width: 64, height: 48 };
        publishedAt.set(`${cam}/${f}`, meta.captureTime);
        publishes.push(camera.publishAsync(frameTopic(cam), pictures[c], { qos: 1, properties: { userProperties: frameUserProperties(meta), contentType: 'image/jpeg' } }));
      }
      if (o.malformed && f === malformedAt) {
        const now = Date.now();
        publishes.push(camera.publishAsync(frameTopic('bad-notimage'), Buffer.from('this is not a picture'), { qos: 1, properties: { userProperties: frameUserProperties({ camera: 'bad-notimage', frameId: 'x1', captureTime: now, width: 64, height: 48 }) } }));
        publishes.push(camera.publishAsync(frameTopic('bad-huge'), hugePngHeader(), { qos: 1, properties: { userProperties: frameUserProperties({ camera: 'bad-huge', frameId: 'x2', captureTime: now, width: 30000, height: 30000 }) } }));
        publishes.push(camera.publishAsync(frameTopic('bad-noprops'), pictures[0], { qos: 1 }));
      }
    }
    await Promise.all(publishes);
    const progress = setInterval(() => log(`${answeredGood()} of ${total} answered, ${results.filter((r) => !r.summary.ok).length} error results`), 15_000);
    progress.unref();
    const t0 = Math.min(...publishedAt.values());
    log(`${total} frames published`);
    await disrupted;
    const malformedCount = o.malformed ? 3 : 0;
    const expectAll = o.disrupt !== 'kill-worker-no-restart';
    if (expectAll) {
      await waitFor(`all ${total} frames answered`, () => answeredGood() >= total && results.filter((r) => !r.summary.ok).length >= malformedCount, HANG_MS, 50);
    } else {
      // Frames stranded in the dead worker's session are never answered: wait until the answers stop.
      let last = -1;
      await waitFor('the answers to stop', () => {
        const n = results.length;
        const still = n === last;
        last = n;
        return still && answeredGood() > 0;
      }, HANG_MS, o.settleMs ?? 5000);
    }
    // A moment more for duplicates still on their way.
    await sleep(500);
    clearInterval(progress);

    const good = results.filter((r) => r.summary.ok);
    const seen = new Map<string, number>();
    for (const r of good) seen.set(`${r.summary.camera}/${r.summary.frameId}`, (seen.get(`${r.summary.camera}/${r.summary.frameId}`) ?? 0) + 1);
    let duplicated = 0;
    for (const n of seen.values()) duplicated += n - 1;
    const perWorker: Record<string, number> = {};
    for (const r of good) perWorker[r.summary.worker] = (perWorker[r.summary.worker] ?? 0) + 1;
    // Order per camera: a result whose frame id is below one already answered for that camera.
    let outOfOrder = 0;
    const highest = new Map<string, number>();
    for (const r of good) {
      const id = Number(r.summary.frameId);
      const top = highest.get(r.summary.camera) ?? 0;
      if (id < top) outOfOrder++;
      else highest.set(r.summary.camera, id);
    }
    const firstAnswer = new Map<string, number>();
    for (const r of good) {
      const k = `${r.summary.camera}/${r.summary.frameId}`;
      if (!firstAnswer.has(k)) firstAnswer.set(k, r.at);
    }
    const latencies = [...firstAnswer].map(([k, at]) => at - publishedAt.get(k)!).sort((a, b) => a - b);
    const times = good.map((r) => r.at).sort((a, b) => a - b);
    let gapMs = 0;
    for (let i = 1; i < times.length; i++) gapMs = Math.max(gapMs, times[i] - times[i - 1]);
    const last = times[times.length - 1] ?? t0;
    return {
      workers: o.workers,
      frames: total,
      answered: seen.size,
      lost: total - [...seen.keys()].filter((k) => publishedAt.has(k)).length,
      duplicated,
      outOfOrder,
      perWorker,
      framesPerSecond: seen.size / ((last - t0) / 1000),
      latencyP50: quantile(latencies, 0.5),
      latencyP99: quantile(latencies, 0.99),
      gapMs,
      errors: results.filter((r) => !r.summary.ok).map((r) => r.summary),
      results,
      workerErrors: workers.flatMap((w) => w.red.errors()),
    };
  } finally {
    await camera?.endAsync(true).catch(() => undefined);
    await collector?.endAsync(true).catch(() => undefined);
    for (const w of workers) await w.red.stop().catch(() => undefined);
    await broker.stop();
  }
}

export function formatRow(name: string, r: ScenarioReport): string {
  const per = Object.entries(r.perWorker).sort().map(([w, n]) => `${w.replace('worker-', 'w')}:${n}`).join(' ');
  return `| ${name} | ${r.workers} | ${r.frames} | ${r.framesPerSecond.toFixed(1)} | ${r.latencyP50} | ${r.latencyP99} | ${r.lost} | ${r.duplicated} | ${r.outOfOrder} | ${r.gapMs} | ${per} |`;
}

export const TABLE_HEAD = '| scenario | workers | frames | frames/s | p50 ms | p99 ms | lost | duplicated | out of order | longest gap ms | answered per worker |\n|---|---|---|---|---|---|---|---|---|---|---|';
