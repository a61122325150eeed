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
import { e2eEnabled, exampleFiles, freePort, installPackage, NodeRed, PKG_NAME, readFlow, ROOT, waitFor } from './harness';

const example = (prefix: string) => {
  const f = exampleFiles().find((p) => path.basename(p).startsWith(prefix));
  if (!f) throw new Error(`no example ${prefix}-*.json in examples/`);
  return readFlow(f);
};

async function readPng(file: string): Promise<{ width: number; height: number; data: Buffer; channels: number }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data, channels: info.channels };
}

(e2eEnabled ? describe : describe.skip)('end to end: the packed package in a real Node-RED', function () {
  this.timeout(180_000);
  let red: NodeRed;
  let userDir: string;
  const SAMPLES = ['vainf_000', 'vainf_060', 'vainf_294', 'vainf_582'];

  before(async function () {
    this.timeout(300_000);
    userDir = await installPackage();
    red = new NodeRed(userDir, await freePort());
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
    assert.ok(fs.existsSync(path.join(installed, 'examples', 'images', 'vainf_000.jpg')));
  });

  it('example 1: photos dropped into the watched folder get a mask and an overlay next to them', async () => {
    const inbox = path.join(userDir, 'deeplab-inbox');
    fs.rmSync(inbox, { recursive: true, force: true });
    fs.mkdirSync(inbox, { recursive: true }); // the comment asks the user to create it first
    await red.deploy(example('01'));
    // A photo copied in by hand, and the others by the flow's own "copy the sample photos" button.
    fs.copyFileSync(path.join(ROOT, 'examples', 'images', 'vainf_294.jpg'), path.join(inbox, 'vainf_294.jpg'));
    await red.inject('ex1-samples');
    const want = SAMPLES.flatMap((s) => [`${s}-mask.png`, `${s}-overlay.png`]);
    await waitFor('8 masks and overlays', () => want.every((f) => fs.existsSync(path.join(inbox, f)) && fs.statSync(path.join(inbox, f)).size > 0), 90_000);
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
    const jpeg = fs.readFileSync(path.join(ROOT, 'examples', 'images', 'vainf_060.jpg'));
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
    }, 60_000, 300);
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
    }, 60_000);
    assert.ok(shown >= 1 && shown <= 8, `frames shown: ${shown}`);
  });

  it('example 3: the dataset evaluated with and without the dense CRF, reports written', async () => {
    const out = path.join(userDir, 'deeplab-reports');
    fs.rmSync(out, { recursive: true, force: true });
    await red.deploy(example('03'));
    await red.inject('ex3-start');
    const files = ['samples-no-crf.json', 'samples-crf.json', 'samples-no-crf-heatmap.png', 'samples-crf-heatmap.png'];
    await waitFor('both reports', () => files.every((f) => fs.existsSync(path.join(out, f))) && /with CRF/.test(red.lastStatus('ex3-compare')?.text ?? ''), 150_000, 500);
    // Ground truth counted independently from the mask files: every class's pixels, void skipped.
    const gt = new Array<number>(21).fill(0);
    for (const s of SAMPLES) {
      const mask = await decodeLabelImage(fs.readFileSync(path.join(ROOT, 'examples', 'masks', `${s}.png`)));
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
    await waitFor('8 overlays', () => want.every((f) => fs.existsSync(path.join(out, f))), 150_000, 500);
    // 3 scales for v2; 4 scales x 2 (flip) for v3, as configured in the flow.
    assert.match(red.lastStatus('ex5-fuse-max')?.text ?? '', /^3 maps -> /);
    assert.match(red.lastStatus('ex5-fuse-mean')?.text ?? '', /^8 maps -> /);
    for (const f of want) {
      const m = await sharp(path.join(out, f)).metadata();
      assert.equal(m.format, 'png');
      assert.equal(m.height, 513);
    }
  });

  it('nothing was logged at error level', () => {
    assert.deepEqual(red.errors(), []);
    assert.deepEqual(red.debug.filter((d) => d.name === 'errors'), []);
  });
});
