/**
 * Reliability under hostile but fair use (issue 12), in a real Node-RED 4.1 running the packed
 * package, with the flow of ./flow.ts written by hand and a tiny random-weights model:
 *
 *   - a burst of 200 concurrent requests into a queue of 2 (drop-oldest): every request answered,
 *     200 or 503 (DEEPLAB_DROPPED); under `wait`, the queue never holds more than its size and the
 *     rest are refused at once (503, DEEPLAB_BUSY);
 *   - bad inputs (corrupt JPEG, a 30000x30000 header, a ground truth PNG that inflates to 1 GB,
 *     wrong types, an empty body): each answered with an error, Node-RED alive, the next request fine;
 *   - a 513x513 photo and a 4000x3000 photo (twice) with fan-out at every stage: answered, Node-RED
 *     alive, the second big photo adds no memory to what the first left;
 *   - 30 redeploys: compute workers and threads bounded, RSS bounded;
 *   - kill -9 of Node-RED while the train node writes a checkpoint every iteration: the restarted
 *     Node-RED resumes from the newest complete checkpoint, with no leftover of the dead process.
 *
 * Every case is bounded by counts (requests, deploys, kills), never by time; waits end on a
 * condition, with a hang guard only. The figures (RSS peak, main-loop stall, Admin API p99,
 * answers) are printed as a table at the end. RSS back within 300 MB of the baseline after a
 * 4000x3000 photo is asserted always (memory does not depend on the machine's load); the Admin API's
 * p99 under 100 ms is a wall-clock figure, asserted only with DEEPLAB_RELIABILITY_STRICT=1 (on a
 * shared 2-core machine at load 20 even the bad-input case, with no compute, measured 151 ms).
 * A watchdog kills Node-RED past DEEPLAB_RELIABILITY_RSS_CAP_MB (default 3072), so a case that
 * would fill the machine's memory fails instead. DEEPLAB_RELIABILITY=0 skips the suite.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { findLatestCheckpoint, listCheckpoints, publishedCheckpoint } from '../../lib/training/checkpoint';
import { readSavedDir } from '../../lib/weights/format';
import { freePort, HANG_MS, NodeRed, waitFor } from '../e2e/harness';
import { reliabilityFlow } from './flow';
import { corruptJpeg, hugeHeaderPng, inflateBombPng, labelPng, photoJpeg } from './inputs';
import { CaseFigures, CaseMonitor, figuresTable, memoryAfterGc, probe, PROBE_ENV, procStatus, reliabilityUserDir, rssAfterGc } from './monitor';

const enabled = process.env.DEEPLAB_RELIABILITY !== '0';
const STRICT = process.env.DEEPLAB_RELIABILITY_STRICT === '1';
const MB = 1 << 20;
const RSS_CAP = Number(process.env.DEEPLAB_RELIABILITY_RSS_CAP_MB || 3072) * MB;
const KILLS = Number(process.env.DEEPLAB_RELIABILITY_KILLS || 3);

interface Answer {
  status: number;
  body: Buffer;
  json?: { code?: string; message?: string; [k: string]: unknown };
}

async function post(red: NodeRed, route: string, body: Buffer | string, type: string): Promise<Answer> {
  const r = await fetch(`${red.url}${route}`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : new Uint8Array(body), signal: AbortSignal.timeout(HANG_MS) });
  const buf = Buffer.from(await r.arrayBuffer());
  let json: Answer['json'];
  if (/json/.test(r.headers.get('content-type') ?? '')) json = JSON.parse(buf.toString('utf8')) as Answer['json'];
  return { status: r.status, body: buf, json };
}

const seg = (red: NodeRed, jpeg: Buffer) => post(red, '/seg', jpeg, 'image/jpeg');
const evalJson = (red: NodeRed, body: Record<string, unknown>) => post(red, '/eval', JSON.stringify(body), 'application/json');
const b64 = (b: Buffer) => b.toString('base64');

function tally(answers: Answer[]): { answered: number; ok: number; unavailable: number; failed: number } {
  return {
    answered: answers.length,
    ok: answers.filter((a) => a.status === 200).length,
    unavailable: answers.filter((a) => a.status === 503).length,
    failed: answers.filter((a) => a.status !== 200 && a.status !== 503).length,
  };
}

/** The highest `q N` (messages waiting) deeplab-infer's status showed since `from`. */
function maxQueue(red: NodeRed, from: number): number {
  return Math.max(0, ...(red.statuses.get('rel-infer') ?? []).slice(from).map((s) => Number(/ · q (\d+)/.exec(s.text ?? '')?.[1] ?? 0)));
}

(enabled ? describe : describe.skip)('reliability: a real Node-RED under hostile but fair use', function () {
  this.timeout(HANG_MS);
  let red: NodeRed;
  let userDir: string;
  let baselineRss = 0;
  let image: Buffer;
  let mask: Buffer;
  const figures: CaseFigures[] = [];
  const started = Date.now();

  const measure = async <T>(name: string, run: () => Promise<{ answers?: Answer[]; note?: string; value?: T }>): Promise<{ fig: CaseFigures; value?: T }> => {
    const m = new CaseMonitor(red, RSS_CAP);
    await m.start();
    let out: { answers?: Answer[]; note?: string; value?: T } = {};
    try {
      out = await run();
    } finally {
      const fig = await m.stop(name, out.answers ? tally(out.answers) : {}, out.note ?? '');
      figures.push(fig);
      if (m.killedAt !== undefined) assert.fail(`${name}: Node-RED passed the RSS cap (${(m.killedAt / MB).toFixed(0)} MB > ${RSS_CAP / MB} MB) and was killed`);
    }
    return { fig: figures[figures.length - 1], value: out.value };
  };

  /**
   * RSS after a case once the flows' garbage is collected (a full GC of Node-RED's main thread,
   * as the baseline was taken): memory still held then is memory kept, not garbage V8 has not
   * got round to. The compute workers collect after 1 s of quiet (PROBE_ENV): up to 20 reads 250 ms
   * apart, the lowest one, ending early once within `slackMB` of the baseline.
   */
  const settledRss = async (slackMB: number): Promise<number> => {
    let low = Infinity;
    for (let i = 0; i < 20 && low > baselineRss + slackMB * MB; i++) {
      if (i) await new Promise((r) => setTimeout(r, 250));
      low = Math.min(low, await rssAfterGc(red));
    }
    return low;
  };

  const deploy = async (opts: Parameters<typeof reliabilityFlow>[0] = {}) => {
    await red.deploy(reliabilityFlow(opts));
  };

  before(async function () {
    this.timeout(HANG_MS);
    userDir = await reliabilityUserDir();
    red = new NodeRed(userDir, await freePort(), PROBE_ENV);
    await red.start();
    await deploy();
    // Warm up: the model loads, the CRF compiles; both routes answer. Pictures of 200x150 keep
    // each request cheap (the full-resolution cases below have their own sizes).
    image = await photoJpeg(200, 150);
    mask = labelPng(200, 150);
    const first = await seg(red, image);
    assert.equal(first.status, 200, first.body.toString().slice(0, 300));
    assert.equal(first.body.subarray(1, 4).toString('latin1'), 'PNG');
    const evaluated = await evalJson(red, { image: b64(image), groundTruth: b64(mask) });
    assert.equal(evaluated.status, 200, evaluated.body.toString().slice(0, 300));
    const perImage = evaluated.json?.image as { meanIoU?: unknown } | undefined;
    assert.equal(typeof perImage?.meanIoU, 'number', JSON.stringify(evaluated.json).slice(0, 300));
    baselineRss = await rssAfterGc(red);
  });

  after(async function () {
    this.timeout(HANG_MS);
    if (red?.pid) {
      const stats = await fetch(`${red.url}/stats`).then((r) => r.json() as Promise<{ answeredTwice: number }>).catch(() => undefined);
      if (stats) console.log(`      requests answered twice (suppressed by "answer once"): ${stats.answeredTwice}`);
      await red.stop();
    }
    console.log(`\n      reliability figures (baseline RSS after GC ${(baselineRss / MB).toFixed(0)} MB; suite ${((Date.now() - started) / 1000).toFixed(0)} s):\n`);
    console.log(figuresTable(figures).split('\n').map((l) => `      ${l}`).join('\n'));
  });

  it('a burst of 200 concurrent requests into a queue of 2 (drop-oldest): every one answered, 200 or 503 DEEPLAB_DROPPED', async () => {
    const { fig, value } = await measure('burst 200, drop-oldest q2', async () => {
      const answers = await Promise.all(Array.from({ length: 200 }, () => seg(red, image)));
      const rss = await settledRss(150);
      return { answers, value: rss, note: '' };
    });
    assert.equal(fig.answered, 200);
    assert.equal(fig.failed, 0, 'only 200 and 503');
    assert.ok(fig.ok >= 1, 'the running and the waiting requests are processed');
    assert.equal(fig.ok + fig.unavailable, 200);
    fig.note = `RSS after GC ${((value ?? 0) / MB).toFixed(0)} MB`;
    assert.ok(value! <= baselineRss + 150 * MB, `RSS ${(value! / MB).toFixed(0)} MB after the burst, baseline ${(baselineRss / MB).toFixed(0)} MB`);
    if (STRICT) assert.ok(fig.adminP99Ms <= 100, `Admin API p99 ${fig.adminP99Ms.toFixed(0)} ms`);
  });

  it('wait with a queue of 2: never more than 2 waiting; 40 concurrent requests answered, the refused ones 503 DEEPLAB_BUSY', async () => {
    await deploy({ queuePolicy: 'wait', queueSize: 2 });
    await seg(red, image); // the model loads again after the deploy
    const from = red.statuses.get('rel-infer')?.length ?? 0;
    const { fig, value: bodies } = await measure('burst 40, wait q2', async () => {
      const answers = await Promise.all(Array.from({ length: 40 }, () => seg(red, image)));
      return { answers, value: answers.filter((a) => a.status === 503).map((a) => a.json) };
    });
    assert.equal(fig.answered, 40);
    assert.equal(fig.failed, 0);
    assert.ok(bodies!.every((j) => j?.code === 'DEEPLAB_BUSY'), JSON.stringify(bodies!.find((j) => j?.code !== 'DEEPLAB_BUSY')));
    assert.ok(maxQueue(red, from) <= 2, `the queue held ${maxQueue(red, from)}`);
    fig.note = `max waiting ${maxQueue(red, from)}`;
  });

  it('bad inputs are each answered with an error and Node-RED stays up; the next good request is answered', async () => {
    await deploy();
    const cases: [string, () => Promise<Answer>, RegExp][] = [
      ['corrupt JPEG', () => seg(red, corruptJpeg()), /./],
      ['30000x30000 PNG header', () => post(red, '/seg', hugeHeaderPng(), 'image/png'), /pixel/i],
      ['empty body', () => post(red, '/seg', Buffer.alloc(0), 'image/jpeg'), /./],
      ['image is a number', () => evalJson(red, { image: 12345 }), /./],
      ['image is an object', () => evalJson(red, { image: { width: 2, height: 2 } }), /./],
      ['ground truth is not a PNG', () => evalJson(red, { image: b64(image), groundTruth: b64(Buffer.from('not a mask')) }), /./],
    ];
    const answers: Answer[] = [];
    await measure('bad inputs (6 kinds)', async () => {
      for (const [what, send, message] of cases) {
        const a = await send();
        answers.push(a);
        assert.equal(a.status, 400, `${what}: ${a.status} ${a.body.toString().slice(0, 200)}`);
        assert.match(String(a.json?.message), message, what);
        assert.ok(red.pid, `Node-RED died on: ${what}`);
      }
      return { answers };
    });
    const bomb = inflateBombPng(1024);
    const { fig } = await measure('ground truth inflating to 1 GB', async () => {
      const a = await evalJson(red, { image: b64(image), groundTruth: b64(bomb) });
      assert.equal(a.status, 400, a.body.toString().slice(0, 300));
      return { answers: [a], note: `${(bomb.length / 1e6).toFixed(1)} MB file, header 513x513` };
    });
    assert.ok(fig.rssPeakMB - fig.rssBeforeMB < 300, `the bomb raised RSS by ${(fig.rssPeakMB - fig.rssBeforeMB).toFixed(0)} MB`);
    const good = await seg(red, image);
    assert.equal(good.status, 200);
  });

  it('a 513x513 photo with fan-out at every stage: answered, Node-RED up', async () => {
    await deploy({ tapEveryStage: true, queuePolicy: 'wait', queueSize: 4 });
    const jpeg = await photoJpeg(513, 513);
    await seg(red, await photoJpeg(64, 48)); // model load
    const { fig } = await measure('513x513, fan-out every stage', async () => ({ answers: [await seg(red, jpeg)] }));
    assert.equal(fig.ok, 1);
    if (STRICT) assert.ok(fig.adminP99Ms <= 100, `Admin API p99 ${fig.adminP99Ms.toFixed(0)} ms`);
  });

  it('30 redeploys: compute workers and threads bounded, RSS bounded', async () => {
    const jpeg = await photoJpeg(96, 72);
    const rows: { rss: number; threads: number; workers: number }[] = [];
    await measure('30 redeploys', async () => {
      const answers: Answer[] = [];
      for (let i = 0; i < 30; i++) {
        await deploy({ queueSize: 2 + (i % 2) }); // a changed node, as an edit in the editor makes
        const a = await seg(red, jpeg);
        answers.push(a);
        assert.equal(a.status, 200, `deploy ${i + 1}: ${a.status} ${a.body.toString().slice(0, 200)}`);
        const st = procStatus(red.pid!)!;
        rows.push({ rss: await rssAfterGc(red), threads: st.threads, workers: (await probe(red)).workers });
      }
      const [r5, r30] = [rows[4], rows[29]];
      return { answers, note: `after 5 / 30 deploys: RSS after GC ${(r5.rss / MB).toFixed(0)} / ${(r30.rss / MB).toFixed(0)} MB, threads ${r5.threads} / ${r30.threads}, workers ${r5.workers} / ${r30.workers}` };
    });
    const [r5, r30] = [rows[4], rows[29]];
    assert.ok(Math.max(...rows.map((r) => r.workers)) <= 2, `compute workers: ${rows.map((r) => r.workers).join(' ')}`);
    assert.ok(r30.threads <= r5.threads + 2, `threads after 5 deploys ${r5.threads}, after 30 ${r30.threads}`);
    assert.ok(r30.rss <= r5.rss + 150 * MB, `RSS after 5 deploys ${(r5.rss / MB).toFixed(0)} MB, after 30 ${(r30.rss / MB).toFixed(0)} MB`);
  });

  it('a 4000x3000 JPEG with fan-out at every stage, twice: answered (a picture or a clear refusal), Node-RED up, no growth from one to the next', async () => {
    await deploy({ tapEveryStage: true });
    await seg(red, await photoJpeg(64, 48)); // model load
    const jpeg = await photoJpeg(4000, 3000);
    const after: number[] = [];
    for (const round of [1, 2]) {
      const { fig, value } = await measure(`4000x3000, fan-out every stage (${round})`, async () => {
        const a = await seg(red, jpeg);
        const rss = await settledRss(300);
        const m = await memoryAfterGc(red);
        const where = `RSS after GC ${(rss / MB).toFixed(0)} MB (main thread: heap ${(m.mainHeap / MB).toFixed(0)} + external ${(m.mainExternal / MB).toFixed(0)} MB; the rest in the compute workers)`;
        return { answers: [a], value: { a, rss }, note: a.status === 200 ? where : `answer: ${String(a.json?.message).slice(0, 80)}; ${where}` };
      });
      assert.equal(fig.answered, 1);
      assert.ok(value!.a.status === 200 || value!.a.status === 400, `${value!.a.status} ${value!.a.body.toString().slice(0, 200)}`);
      assert.ok(red.pid, 'Node-RED is up');
      after.push(value!.rss);
      // The compute workers hand back what the photo took (lib/compute/worker-main's idle collection;
      // the forward wrapper keeps the full-size photo out of the engine's never-shrinking memory).
      assert.ok(value!.rss <= baselineRss + 300 * MB, `RSS ${(value!.rss / MB).toFixed(0)} MB after the big image, baseline ${(baselineRss / MB).toFixed(0)} MB`);
      if (STRICT) assert.ok(fig.adminP99Ms <= 100, `Admin API p99 ${fig.adminP99Ms.toFixed(0)} ms`);
    }
    // What the first image left is reused by the second, not added to.
    assert.ok(after[1] <= after[0] + 150 * MB, `RSS after GC: ${(after[0] / MB).toFixed(0)} MB after the first big image, ${(after[1] / MB).toFixed(0)} MB after the second`);
  });

  it(`kill -9 of Node-RED while the train node checkpoints every iteration (${KILLS} kills): resumes from the newest complete checkpoint, leftovers removed`, async () => {
    if (red.pid) await red.stop();
    const TRAIN_TAB = 'rel-train-tab';
    const flow = [
      { id: TRAIN_TAB, type: 'tab', label: 'reliability: training', disabled: false, info: '' },
      {
        id: 'rel-train', type: 'deeplab-train', z: TRAIN_TAB, name: '', synSize: 33, synClasses: 3, synTrain: 8, synVal: 2, batchSize: 2,
        maxIter: 1000, checkpointEvery: 1, keep: 2, evalEvery: 0, progressEvery: 1, publish: true, x: 300, y: 100, wires: [[], ['rel-train-events']],
      },
      { id: 'rel-train-start', type: 'inject', z: TRAIN_TAB, name: 'start', props: [{ p: 'payload' }], payload: 'start', payloadType: 'str', repeat: '', once: false, x: 120, y: 100, wires: [['rel-train']] },
      { id: 'rel-train-events', type: 'debug', z: TRAIN_TAB, name: 'train events', active: true, tosidebar: true, console: false, tostatus: false, complete: 'payload', targetType: 'msg', x: 500, y: 100, wires: [] },
    ];
    fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow));
    const root = path.join(userDir, 'deeplab-training', 'rel-train');
    fs.rmSync(root, { recursive: true, force: true });
    const iterationOf = (t?: string) => Number(/ · it (\d+)\/1000/.exec(t ?? '')?.[1] ?? -1);
    let rnd = 4242;
    const next = () => (rnd = (rnd * 1103515245 + 12345) % 2147483648) / 2147483648;
    const deadPids: number[] = [];
    const notes: string[] = [];
    let expectFrom = 0;
    let peak = 0;
    const t0 = performance.now();
    for (let k = 0; k <= KILLS; k++) {
      red = new NodeRed(userDir, await freePort());
      await red.start();
      await waitFor('the training flow to start', () => red.startedCount() > 0, HANG_MS, 50);
      await red.inject('rel-train-start');
      // The run says where it starts: the iteration of the checkpoint it resumed from.
      const startedAt = await waitFor('the started event', () => {
        const d = red.debug.find((m) => m.topic === 'started');
        return d ? { it: Number(/"iteration":(\d+)/.exec(d.msg)?.[1]) } : undefined;
      }, HANG_MS, 20).then((v) => v.it);
      if (k > 0) {
        assert.equal(startedAt, expectFrom, `restart ${k}: resumed from iteration ${startedAt}, the newest complete checkpoint was ${expectFrom}`);
        // Nothing of a killed process is left once training has started (a live writer's own temps may be there).
        const left = fs.readdirSync(root).filter((n) => n.startsWith('.tmp-') && deadPids.some((p) => n.includes(`-p${p}s`)));
        assert.deepEqual(left, [], 'leftovers of the killed processes');
      }
      if (k === KILLS) break;
      // Kill 0-70 ms after a progress report a few iterations in: inside or next to a checkpoint write.
      const target = startedAt + 2 + Math.floor(next() * 3);
      const seen = await waitFor(`iteration ${target}`, () => {
        const it = iterationOf(red.lastStatus('rel-train')?.text);
        return it >= target ? it : undefined;
      }, HANG_MS, 5);
      await new Promise((r) => setTimeout(r, next() * 70));
      peak = Math.max(peak, procStatus(red.pid!)?.peak ?? 0);
      deadPids.push(red.pid!);
      await red.kill();
      const ck = findLatestCheckpoint(root);
      assert.ok(ck, 'a loadable checkpoint after the kill');
      // Progress k is reported after step k, and checkpoint k-1 was complete before step k began.
      assert.ok(ck.state.iteration >= seen - 1, `newest complete checkpoint ${ck.state.iteration}, progress had reached ${seen}`);
      const pub = publishedCheckpoint(root);
      assert.ok(pub && listCheckpoints(root).some((c) => c.name === pub), `published -> ${pub}`);
      readSavedDir(path.join(root, 'published')); // a whole model of one iteration
      expectFrom = ck.state.iteration;
      notes.push(`${seen}->${expectFrom}`);
    }
    await red.stop();
    figures.push({
      name: `kill -9 while checkpointing (${KILLS}x)`, seconds: (performance.now() - t0) / 1000, rssBeforeMB: NaN, rssPeakMB: peak / MB, rssAfterMB: NaN, stallMaxMs: NaN, adminP99Ms: NaN,
      adminMaxMs: NaN, adminProbes: 0, answered: 0, ok: 0, unavailable: 0, failed: 0, note: `progress seen -> resumed from: ${notes.join(', ')}`,
    });
  });
});
