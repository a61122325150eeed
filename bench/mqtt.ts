/**
 * MQTT scale-out figures: a Mosquitto 2 broker, N Node-RED worker processes from the packed
 * package (the worker flow of test/mqtt/worker-flow, example 07's shape), 3 cameras publishing
 * every frame at once (QoS 1), the collector measuring from frame ids. Prints one table row per
 * scenario: workers, frames/s, p50/p99 latency from publish to result (queueing included: the
 * frames are all published at once), lost, duplicated, out of order per camera, longest gap.
 *
 *   npm run build && node dist/bench/mqtt.js            # 3 cameras x 100 frames (the table of the README)
 *   FRAMES=30 node dist/bench/mqtt.js                    # shorter
 *   SIZE=257 node dist/bench/mqtt.js                     # deeplab-infer input size (default 64: the tiny model, transport-bound)
 *
 * Throughput per worker count is a ratio from runs on one machine, in order 1, 2, 3 workers;
 * every Node-RED worker competes for the same cores (and with the broker and this process).
 */
import { formatRow, runScenario, ScenarioOptions, TABLE_HEAD } from '../test/mqtt/scale-out';
import { mosquittoPath } from '../test/mqtt/broker';

async function main(): Promise<void> {
  mosquittoPath();
  const framesPerCamera = Number(process.env.FRAMES ?? 100);
  const size = Number(process.env.SIZE ?? 64);
  const base: Omit<ScenarioOptions, 'workers'> = { cameras: 3, framesPerCamera, size, log: (s) => console.error(`  ${s}`) };
  const runs: [string, ScenarioOptions][] = [
    ['steady', { ...base, workers: 1 }],
    ['steady', { ...base, workers: 2 }],
    ['steady', { ...base, workers: 3 }],
    ['malformed frames (3) amid the stream', { ...base, workers: 2, malformed: true }],
    ['worker-1 SIGKILL mid-stream, restarted after 1 s', { ...base, workers: 2, disrupt: 'kill-worker' }],
    ['worker-1 SIGKILL mid-stream, never back', { ...base, workers: 2, disrupt: 'kill-worker-no-restart' }],
    ['broker restart mid-stream (SIGTERM, 1 s down)', { ...base, workers: 2, disrupt: 'restart-broker' }],
  ];
  console.log(`3 cameras x ${framesPerCamera} frames (64x48 JPEG), deeplab-infer size ${size}, in-flight window 4 per worker\n`);
  console.log(TABLE_HEAD);
  const fps: number[] = [];
  for (const [name, o] of runs) {
    const r = await runScenario(o);
    if (name === 'steady') fps.push(r.framesPerSecond);
    console.log(formatRow(name, r));
    if (r.errors.length) console.error(`  error results: ${r.errors.map((e) => `${e.camera}/${e.frameId}: ${e.error?.code}`).join(', ')}`);
  }
  console.log(`\nthroughput ratio 2/1 workers: ${(fps[1] / fps[0]).toFixed(2)}, 3/1 workers: ${(fps[2] / fps[0]).toFixed(2)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
