/**
 * Scale-out over MQTT, end to end and bounded: a real Mosquitto 2 on a loopback port, Node-RED
 * worker processes from the packed package running the worker flow (test/mqtt/worker-flow,
 * example 07's shape), this process as three cameras and the collector. Frame ids decide:
 * every frame answered exactly once, malformed frames answered with an error result, nothing
 * lost when a worker is killed (and comes back) or the broker restarts.
 *
 * The full figures (1, 2, 3 workers, the kill without restart) are bench/mqtt.ts's.
 * Needs the `mosquitto` package (.ci/run installs it); DEEPLAB_E2E=0 skips it with the other
 * end-to-end tests.
 */
import * as assert from 'assert';
import { decodeLabelImage } from '../../lib/data/labels';
import { e2eEnabled } from '../e2e/harness';
import { formatRow, runScenario, ScenarioReport, TABLE_HEAD } from './scale-out';
import { mosquittoPath } from './broker';

const rows: string[] = [];
const log = (s: string) => process.env.DEEPLAB_MQTT_LOG && console.log(`      ${s}`);

function assertExactlyOnce(r: ScenarioReport): void {
  assert.strictEqual(r.lost, 0, `lost ${r.lost} of ${r.frames}`);
  assert.strictEqual(r.answered, r.frames);
}

(e2eEnabled ? describe : describe.skip)('scale-out over MQTT: Mosquitto, Node-RED workers, shared subscription', function () {
  before(() => {
    mosquittoPath(); // fails here, by name, where the broker is not installed
  });
  after(() => {
    if (rows.length) console.log(`\n${TABLE_HEAD}\n${rows.join('\n')}\n`);
  });

  it('3 cameras x 100 frames into 2 workers: every frame answered exactly once; malformed frames get error results', async () => {
    const r = await runScenario({ workers: 2, cameras: 3, framesPerCamera: 100, malformed: true, log });
    rows.push(formatRow('2 workers, 3 malformed frames', r));
    assertExactlyOnce(r);
    assert.strictEqual(r.duplicated, 0, 'no frame answered twice without a failure');
    // Both workers took part (the shared subscription spreads the frames).
    assert.deepStrictEqual(Object.keys(r.perWorker).sort(), ['worker-1', 'worker-2']);
    for (const n of Object.values(r.perWorker)) assert.ok(n > 0);
    // The malformed frames: one error result each, on their camera's topic, and the stream went on past them.
    const errs = new Map(r.errors.map((e) => [e.camera, e]));
    assert.deepStrictEqual([...errs.keys()].sort(), ['bad-huge', 'bad-noprops', 'bad-notimage']);
    for (const e of errs.values()) assert.strictEqual(e.error!.code, 'DEEPLAB_BAD_FRAME', JSON.stringify(e));
    assert.match(errs.get('bad-huge')!.error!.message, /30000x30000/);
    assert.match(errs.get('bad-notimage')!.error!.message, /not an image/);
    assert.match(errs.get('bad-noprops')!.error!.message, /no MQTT v5 user properties/);
    assert.strictEqual(errs.get('bad-huge')!.frameId, 'x2');
    // A result is the frame's label map: an indexed PNG at the frame's size whose class counts add up.
    const one = r.results.find((x) => x.summary.ok)!;
    const labels = await decodeLabelImage(one.png);
    assert.deepStrictEqual([labels.width, labels.height], [64, 48]);
    assert.strictEqual(Object.values(one.summary.counts!).reduce((a, b) => a + b, 0), 64 * 48);
    assert.deepStrictEqual(r.workerErrors, []);
  });

  it('a worker killed with SIGKILL mid-stream and restarted: no frame lost (its unacknowledged frames come back)', async () => {
    const r = await runScenario({ workers: 2, cameras: 3, framesPerCamera: 30, disrupt: 'kill-worker', log });
    rows.push(formatRow('2 workers, worker-1 SIGKILL + restart', r));
    assertExactlyOnce(r);
    // At-least-once: what the killed worker had answered but not yet acknowledged may come twice, never more than its window.
    assert.ok(r.duplicated <= 4, `duplicated ${r.duplicated}`);
  });

  it('the broker restarted mid-stream: the workers reconnect and continue, no frame lost', async () => {
    const r = await runScenario({ workers: 2, cameras: 3, framesPerCamera: 30, disrupt: 'restart-broker', log });
    rows.push(formatRow('2 workers, broker restart', r));
    assertExactlyOnce(r);
    assert.ok(r.gapMs > 0);
  });
});
