/**
 * The packed package in a real Node-RED 4.1 process: every example flow is deployed through the
 * Admin API, fed the way a user would feed it (files dropped in a folder, frames POSTed, buttons
 * pressed) and its results checked; then Node-RED is stopped cleanly.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { decodeLabelImage } from '../../lib/data/labels';
import { CLASS_PRESETS } from '../../lib/data/palette';
import { e2eEnabled, exampleFiles, freePort, installPackage, NodeRed, OUT, PKG_NAME, readFlow, ROOT, waitFor, HANG_MS } from './harness';

const example = (prefix: string) => {
  const f = exampleFiles().find((p) => path.basename(p).startsWith(prefix));
  if (!f) throw new Error(`no example ${prefix}-*.json in examples/`);
  return readFlow(f);
};

/** Plays ffmpeg's part: records its arguments, writes a JPEG three times on stdout in 1000-byte pieces, waits to be killed. */
const FAKE_FFMPEG = `#!/usr/bin/env node
const fs = require('fs');
fs.writeFileSync(process.env.FAKE_FFMPEG_ARGS, JSON.stringify(process.argv.slice(2)));
const jpeg = fs.readFileSync(process.env.FAKE_FFMPEG_JPEG);
const all = Buffer.concat([jpeg, jpeg, jpeg]);
let at = 0;
const timer = setInterval(() => {
  if (at >= all.length) { clearInterval(timer); return; }
  process.stdout.write(all.subarray(at, at + 1000));
  at += 1000;
}, 2);
setInterval(() => {}, 1000);
`;

function node(flow: { id: string }[], id: string): Record<string, unknown> {
  const n = flow.find((x) => x.id === id);
  if (!n) throw new Error(`no node ${id} in the flow`);
  return n as Record<string, unknown>;
}

async function readPng(file: string): Promise<{ width: number; height: number; data: Buffer; channels: number }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data, channels: info.channels };
}

(e2eEnabled ? describe : describe.skip)('end to end: the packed package in a real Node-RED', function () {
  this.timeout(HANG_MS);
  let red: NodeRed;
  let userDir: string;
  const SAMPLES = ['vainf_000', 'vainf_060', 'vainf_294', 'vainf_582'];

  before(async function () {
    this.timeout(HANG_MS);
    userDir = await installPackage();
    // A stand-in for ffmpeg on the PATH (example 2's camera path; ffmpeg itself is optional).
    const bin = path.join(OUT, 'fake-bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'ffmpeg'), FAKE_FFMPEG, { mode: 0o755 });
    red = new NodeRed(userDir, await freePort(), { PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`, FAKE_FFMPEG_ARGS: path.join(OUT, 'ffmpeg-args.json'), FAKE_FFMPEG_JPEG: path.join(ROOT, 'sample-data', 'images', 'vainf_294.jpg') });
    await red.start();
  });

  after(async function () {
    if (!red) return;
    const code = await red.stop();
    assert.equal(code, 0, `Node-RED exit code ${code}:\n${red.log.slice(-20).join('\n')}`);
  });

  it('loads every node of the package from the installed tarball', async () => {
    const r = await fetch(`${red.url}/nodes`, { headers: { accept: 'application/json' } });
    const sets = (await r.json()) as { module: string; types: string[]; enabled: boolean; err?: string }[];
    const ours = sets.filter((s) => s.module === PKG_NAME);
    const declared = Object.keys((JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes);
    const missing = declared.filter((name) => !ours.some((s) => s.types.includes(name) && s.enabled && !s.err));
    assert.deepEqual(missing, [], `not loaded: ${missing.join(', ')}\n${ours.filter((s) => s.err).map((s) => `${s.types}: ${s.err}`).join('\n')}`);
    // Installed as a user would: a real copy in the user directory, not a link to the checkout.
    const installed = path.join(userDir, 'node_modules', ...PKG_NAME.split('/'));
    assert.ok(!fs.lstatSync(installed).isSymbolicLink());
    assert.ok(fs.existsSync(path.join(installed, 'sample-data', 'images', 'vainf_000.jpg')));
    // Import > Examples lists every file and folder in examples/: flows only there, the pictures elsewhere.
    assert.deepEqual(fs.readdirSync(path.join(installed, 'examples')).filter((f) => !f.endsWith('.json')), []);
  });

  it('example 1: photos dropped into the watched folder get a mask and an overlay next to them', async () => {
    const inbox = path.join(userDir, 'deeplab-inbox');
    fs.rmSync(inbox, { recursive: true, force: true });
    fs.mkdirSync(inbox, { recursive: true }); // the comment asks the user to create it first
    await red.deploy(example('01'));
    // A photo copied in by hand, and the others by the flow's own "copy the sample photos" button.
    fs.copyFileSync(path.join(ROOT, 'sample-data', 'images', 'vainf_294.jpg'), path.join(inbox, 'vainf_294.jpg'));
    await red.inject('ex1-samples');
    const want = SAMPLES.flatMap((s) => [`${s}-mask.png`, `${s}-overlay.png`]);
    await waitFor('8 masks and overlays', () => want.every((f) => fs.existsSync(path.join(inbox, f)) && fs.statSync(path.join(inbox, f)).size > 0), HANG_MS);
    await new Promise((r) => setTimeout(r, 1000));
    // Our own outputs are not segmented again (no "-mask-mask.png").
    assert.deepEqual(fs.readdirSync(inbox).filter((f) => /-(mask|overlay)-/.test(f)), []);
    const palette = new Set(CLASS_PRESETS.voc21.colors.map(([r, g, b]) => `${r},${g},${b}`));
    for (const s of SAMPLES) {
      const mask = await readPng(path.join(inbox, `${s}-mask.png`));
      const photo = await sharp(path.join(inbox, `${s}.jpg`)).metadata();
      assert.equal(mask.width, photo.width);
      assert.equal(mask.height, photo.height);
      // A label mask: every pixel is a VOC class colour.
      for (let i = 0; i < mask.data.length; i += mask.channels) {
        const key = `${mask.data[i]},${mask.data[i + 1]},${mask.data[i + 2]}`;
        if (!palette.has(key)) assert.fail(`${s}-mask.png pixel ${i / mask.channels} is ${key}, not a VOC colour`);
      }
      const overlay = await sharp(path.join(inbox, `${s}-overlay.png`)).metadata();
      assert.equal(overlay.height, photo.height);
      assert.ok(overlay.width! >= photo.width!, 'the overlay is the photo, with the legend beside it');
    }
  });

  it('example 2: JPEG frames POSTed to /deeplab/frame are segmented and served live', async () => {
    await red.deploy(example('02'));
    const none = await fetch(`${red.url}/deeplab/camera/latest.jpg`);
    assert.equal(none.status, 404);
    const jpeg = fs.readFileSync(path.join(ROOT, 'sample-data', 'images', 'vainf_060.jpg'));
    const replies: { accepted: boolean; frame: number }[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await fetch(`${red.url}/deeplab/frame`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: jpeg });
      assert.equal(r.status, 202);
      replies.push((await r.json()) as { accepted: boolean; frame: number });
    }
    assert.deepEqual(replies.map((r) => r.frame), [1, 2, 3, 4, 5, 6, 7, 8]);
    const bad = await fetch(`${red.url}/deeplab/frame`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'not a frame' });
    assert.equal(bad.status, 400);
    const latest = await waitFor('a segmented frame', async () => {
      const r = await fetch(`${red.url}/deeplab/camera/latest.jpg`);
      return r.ok ? Buffer.from(await r.arrayBuffer()) : undefined;
    }, HANG_MS, 300);
    const meta = await sharp(latest).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.equal(meta.height, 513);
    // The live page refreshes that picture.
    const page = await (await fetch(`${red.url}/deeplab/camera`)).text();
    assert.match(page, /camera\/latest\.jpg/);
    // Every frame is either shown or dropped by the bounded queue; none is left waiting.
    const shown = await waitFor('the queue to drain', () => {
      const s = red.lastStatus('ex2-infer')?.text ?? '';
      const keep = red.lastStatus('ex2-keep')?.text ?? '';
      const m = /frame (\d+)/.exec(keep);
      return /q 0/.test(s) && m ? Number(m[1]) : undefined;
    }, HANG_MS);
    assert.ok(shown >= 1 && shown <= 8, `frames shown: ${shown}`);
  });

  it('example 2: frames pulled by ffmpeg through the exec node are cut at the JPEG markers and segmented', async () => {
    // Example 2 is still deployed; the stand-in writes 3 JPEGs back to back in odd-sized chunks, then waits.
    const shownBefore = Number(/frame (\d+)/.exec(red.lastStatus('ex2-keep')?.text ?? '')?.[1] ?? 0);
    await red.inject('ex2-start');
    const args = await waitFor('ffmpeg to start', () => fs.existsSync(path.join(OUT, 'ffmpeg-args.json')) && (JSON.parse(fs.readFileSync(path.join(OUT, 'ffmpeg-args.json'), 'utf8')) as string[]), HANG_MS);
    // The command line from the tab variables: RTSP over TCP, 2 frames a second, JPEGs on stdout.
    assert.deepEqual(args, ['-hide_banner', '-loglevel', 'error', '-rtsp_transport', 'tcp', '-i', 'rtsp://192.168.1.10:554/stream1', '-vf', 'fps=2', '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '5', '-']);
    await waitFor('a frame from ffmpeg segmented', () => Number(/frame (\d+)/.exec(red.lastStatus('ex2-keep')?.text ?? '')?.[1] ?? 0) > shownBefore, HANG_MS, 200);
    await red.inject('ex2-stop');
    await waitFor('ffmpeg to be stopped', () => red.lastStatus('ex2-ffmpeg')?.text === 'killed', HANG_MS);
  });

  it('example 3: the dataset evaluated with and without the dense CRF, reports written', async () => {
    const out = path.join(userDir, 'deeplab-reports');
    fs.rmSync(out, { recursive: true, force: true });
    await red.deploy(example('03'));
    await red.inject('ex3-start');
    const files = ['samples-no-crf.json', 'samples-crf.json', 'samples-no-crf-heatmap.png', 'samples-crf-heatmap.png'];
    await waitFor('both reports', () => files.every((f) => fs.existsSync(path.join(out, f))) && /with CRF/.test(red.lastStatus('ex3-compare')?.text ?? ''), HANG_MS, 500);
    // Ground truth counted independently from the mask files: every class's pixels, void skipped.
    const gt = new Array<number>(21).fill(0);
    for (const s of SAMPLES) {
      const mask = await decodeLabelImage(fs.readFileSync(path.join(ROOT, 'sample-data', 'masks', `${s}.png`)));
      for (const v of mask.data) if (v !== 255) gt[v]++;
    }
    type Report = { images: number; pixels: number; meanIoU: number; pixelAccuracy: number; perClass: { id: number; gtPixels: number; predPixels: number }[]; confusion: number[][] };
    for (const f of ['samples-no-crf.json', 'samples-crf.json']) {
      const r = JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')) as Report;
      assert.equal(r.images, 4, f);
      assert.deepEqual(r.perClass.map((c) => c.gtPixels), gt, `${f}: ground-truth pixels per class`);
      assert.equal(r.pixels, gt.reduce((a, b) => a + b, 0), f);
      assert.equal(r.confusion.flat().reduce((a, b) => a + b, 0), r.pixels, `${f}: the confusion matrix counts every pixel once`);
      assert.ok(r.meanIoU >= 0 && r.meanIoU <= 1 && r.pixelAccuracy >= 0 && r.pixelAccuracy <= 1, f);
    }
    const comparison = red.debug.filter((d) => d.name === 'comparison').pop();
    assert.ok(comparison, 'the comparison reached the debug sidebar');
    assert.match(comparison.msg, /"images":4/);
  });

  it('example 5: multi-scale inference fused by max (v2) and by mean of probabilities with flips (v3)', async () => {
    const out = path.join(userDir, 'deeplab-msc');
    fs.rmSync(out, { recursive: true, force: true });
    await red.deploy(example('05'));
    await red.inject('ex5-go');
    const want = SAMPLES.flatMap((s) => [`${s}-v2-max.png`, `${s}-v3-mean.png`]);
    await waitFor('8 overlays', () => want.every((f) => fs.existsSync(path.join(out, f))), HANG_MS, 500);
    // 3 scales for v2; 4 scales x 2 (flip) for v3, as configured in the flow.
    assert.match(red.lastStatus('ex5-fuse-max')?.text ?? '', /^3 maps -> /);
    assert.match(red.lastStatus('ex5-fuse-mean')?.text ?? '', /^8 maps -> /);
    for (const f of want) {
      const m = await sharp(path.join(out, f)).metadata();
      assert.equal(m.format, 'png');
      assert.equal(m.height, 513);
    }
  });

  it('example 4: training started, paused, resumed, stopped and resumed from its checkpoint; predictions rendered', async () => {
    const flow = example('04');
    // A short schedule (the example trains 100 iterations, minutes on two cores); otherwise as shipped.
    Object.assign(node(flow, 'ex4-train'), { maxIter: 8, checkpointEvery: 4, evalEvery: 4, progressEvery: 1 });
    fs.rmSync(path.join(userDir, 'deeplab-training', 'example-4'), { recursive: true, force: true });
    await red.deploy(flow);
    const trainStatus = () => red.lastStatus('ex4-train')?.text ?? '';
    const iterationOf = (t: string) => Number(/(\d+)\/8\b/.exec(t)?.[1] ?? NaN);
    await red.inject('ex4-inj-start');
    await waitFor('training progress', () => iterationOf(trainStatus()) >= 1, HANG_MS);
    await red.inject('ex4-inj-pause');
    await waitFor('the pause', () => /^paused/.test(trainStatus()), HANG_MS);
    const pausedAt = iterationOf(trainStatus());
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(iterationOf(trainStatus()), pausedAt, 'no step while paused');
    await red.inject('ex4-inj-resume');
    // The first checkpoint (iteration 4) is published and a validation picture segmented with it.
    await waitFor('a prediction after the first checkpoint', () => /png/.test(red.lastStatus('ex4-render')?.text ?? ''), HANG_MS);
    await red.inject('ex4-inj-stop');
    await waitFor('the stop', () => /^stopped at/.test(trainStatus()), HANG_MS);
    const stoppedAt = iterationOf(trainStatus());
    assert.ok(stoppedAt >= 4 && stoppedAt <= 8, `stopped at ${stoppedAt}`);
    const seen = red.statuses.get('ex4-train')?.length ?? 0;
    await red.inject('ex4-inj-start');
    await waitFor('the end of the resumed run', () => /^done 8\/8/.test(trainStatus()), HANG_MS);
    // Resumed from the stop's checkpoint: the second run never shows an iteration before it (from scratch: 0, 1...).
    const resumed = (red.statuses.get('ex4-train') ?? []).slice(seen).map((st) => iterationOf(st.text ?? '')).filter((n) => !Number.isNaN(n));
    assert.ok(resumed.length > 0 && Math.min(...resumed) >= stoppedAt, `second run's iterations ${resumed.join(',')} after a stop at ${stoppedAt}`);
    const published = path.join(userDir, 'deeplab-training', 'example-4', 'published', 'deeplab.json');
    assert.ok(fs.existsSync(published), 'the published model');
    // Every training status went to the dashboard's status line through the status node.
    assert.ok((red.statuses.get('ex4-train') ?? []).length > 5);
  });

  it('the demo: trains on shapes (progress, evaluation, checkpoints), publishes, then segments the stream', async () => {
    const flow = readFlow(path.join(ROOT, 'demo', 'flows.json'));
    // A short schedule (the demo trains 50 iterations, a few minutes); otherwise as shipped.
    Object.assign(node(flow, 'demo-train'), { maxIter: 6, checkpointEvery: 3, evalEvery: 3, progressEvery: 1 });
    fs.rmSync(path.join(userDir, 'demo-output'), { recursive: true, force: true });
    const debugFrom = red.debug.length;
    await red.deploy(flow); // training starts by itself
    const waiting = await (await fetch(`${red.url}/deeplab/latest`)).text();
    assert.match(waiting, /training/);
    await waitFor('the demo training to finish', () => /^done 6\/6/.test(red.lastStatus('demo-train')?.text ?? ''), HANG_MS, 500);
    const progress = (red.statuses.get('demo-train') ?? []).map((st) => st.text ?? '').filter((t) => /it \d\/6 · loss/.test(t));
    assert.ok(progress.length >= 3, `progress statuses: ${progress.join(' | ')}`);
    // The done event follows the status (it waits for the last checkpoint's publication) and travels through link nodes.
    const done = await waitFor('the done event in the debug sidebar', () => red.debug.slice(debugFrom).find((d) => d.name === 'training done'), HANG_MS, 200);
    assert.match(done.msg, /"reason":"finished"/);
    assert.ok(fs.existsSync(path.join(userDir, 'deeplab-training', 'demo', 'published', 'weights.bin')), 'published model');
    // The stream: the newest picture over HTTP, files, and the editor status naming what was found.
    const png = await waitFor('a segmented picture', async () => {
      const r = await fetch(`${red.url}/deeplab/latest`);
      return r.ok ? Buffer.from(await r.arrayBuffer()) : undefined;
    }, HANG_MS, 500);
    assert.equal((await sharp(png).metadata()).format, 'png');
    const out = path.join(userDir, 'demo-output');
    await waitFor('a photo and a synthetic picture segmented', () => {
      const files = fs.existsSync(out) ? fs.readdirSync(out) : [];
      return files.some((f) => f.startsWith('vainf_')) && files.some((f) => f.startsWith('shapes-'));
    }, HANG_MS, 500);
    assert.match(red.lastStatus('demo-shown')?.text ?? '', /\.(png|jpg): /);
  });

  it('nothing was logged at error level', () => {
    assert.deepEqual(red.errors(), []);
    assert.deepEqual(red.debug.filter((d) => d.name === 'errors'), []);
  });
});
