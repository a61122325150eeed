/**
 * Published weights end to end, from a local server: a site catalogue entry (DEEPLAB_CATALOGUE)
 * names a PyTorch checkpoint written by the real torch; the model cache downloads it with progress,
 * a worker converts it once and runs it; a second use downloads and converts nothing; offline, the
 * error names the URL, the cause and where to put the file. The command line does the same.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { AddressInfo } from 'net';
import { main as cli } from '../../lib/cli';
import { LoadProgress, ModelCache } from '../../lib/compute/model-cache';
import { WorkerPool } from '../../lib/compute/pool';
import { reloadPublished } from '../../lib/weights/catalogue';
import { MANIFEST_FILE, readSavedDir } from '../../lib/weights/format';
import { preparePublished } from '../../lib/weights/published';
import { vocSample } from '../helpers/shared-data';
import { runTorchPython } from '../helpers/torch-python';

const OUT = path.resolve(__dirname, '../../../test-output/torch-layouts');
const SCRIPT = path.resolve(__dirname, '../../../test/fixtures/torch/make_layout_fixtures.py');
const CASE = 'jfzhang95-v3plus-mobilenet';
const VOC21 = ['background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'];

function entry(id: string, url: string): Record<string, unknown> {
  return {
    id, title: `test mirror ${id}`, url, unverified: 'a test file', format: 'pytorch', layout: 'jfzhang95',
    spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 21, outputStride: 16, layout: 'jfzhang95' },
    dataset: 'none (random weights)', classNames: VOC21, preprocessing: 'imagenet',
    score: { metric: 'mIoU', value: 1, on: 'nothing' }, license: 'test', source: 'https://example.org/test',
  };
}

describe('lib/weights: published weights from a (local) server', () => {
  let server: http.Server;
  let base = '';
  let requests = 0;
  let tmp: string;
  const savedEnv = process.env.DEEPLAB_CATALOGUE;

  before(async function () {
    this.timeout(600_000);
    // The command-line case imports the VGG fixture too; each test file makes what it uses.
    runTorchPython(SCRIPT, [vocSample('vainf_582'), OUT, CASE, 'vgg-largefov']);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-published-'));
    const file = path.join(OUT, `${CASE}.zip.pth`);
    server = http.createServer((req, res) => {
      requests++;
      if (req.url !== '/models/jf.pth') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Length': fs.statSync(file).size });
      fs.createReadStream(file).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // A closed port for the offline case: bind one, note it, close it.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const catalogue = path.join(tmp, 'site-catalogue.json');
    fs.writeFileSync(catalogue, JSON.stringify({ entries: [entry('site/jf-mobilenet', `${base}/models/jf.pth`), entry('site/offline', `http://127.0.0.1:${closedPort}/x.pth`)] }));
    process.env.DEEPLAB_CATALOGUE = catalogue;
    reloadPublished();
  });

  after(async () => {
    if (savedEnv === undefined) delete process.env.DEEPLAB_CATALOGUE;
    else process.env.DEEPLAB_CATALOGUE = savedEnv;
    reloadPublished();
    await new Promise((r) => server.close(r));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('downloads once, converts once, and a second use reads the converted folder', async () => {
    const cacheDir = path.join(tmp, 'cache-a');
    const phases: string[] = [];
    const before = requests;
    const dir = await preparePublished('site/jf-mobilenet', { cacheDir, onProgress: (p) => phases.push(p.phase) });
    assert.equal(requests - before, 1);
    assert.ok(phases.includes('download') && phases[phases.length - 1] === 'convert');
    const saved = readSavedDir(dir);
    assert.equal(saved.manifest.spec.layout, 'jfzhang95');
    assert.deepEqual(saved.manifest.classNames, VOC21);
    assert.equal(saved.manifest.meta?.published, 'site/jf-mobilenet');
    const stamp = fs.statSync(path.join(dir, MANIFEST_FILE)).mtimeMs;
    const again = await preparePublished('site/jf-mobilenet', { cacheDir, onProgress: (p) => phases.push(`again-${p.phase}`) });
    assert.equal(again, dir);
    assert.equal(requests - before, 1, 'no second download');
    assert.equal(fs.statSync(path.join(dir, MANIFEST_FILE)).mtimeMs, stamp, 'no second conversion');
    assert.ok(!phases.some((p) => p.startsWith('again-')));
  });

  it('the model cache downloads with progress on the main thread, a worker converts and runs it', async function () {
    this.timeout(600_000);
    // A pool made now: its worker sees DEEPLAB_CATALOGUE.
    const pool = new WorkerPool(1);
    const cache = new ModelCache(pool);
    try {
      const cacheDir = path.join(tmp, 'cache-b');
      const handle = cache.acquire({ spec: { variant: 'v3plus' }, weights: { source: 'published', id: 'site/jf-mobilenet', cacheDir } });
      const seen: LoadProgress[] = [];
      handle.onProgress((p) => seen.push(p));
      const info = await handle.ready();
      assert.equal(info.spec.backbone, 'mobilenetv2');
      assert.equal(info.spec.layout, 'jfzhang95');
      assert.deepEqual(info.classNames, VOC21);
      const downloads = seen.filter((p): p is Extract<LoadProgress, { phase: 'download' }> => p.phase === 'download');
      assert.ok(downloads.length > 0 && downloads[downloads.length - 1].download.percent === 100, 'download progress reaches 100 %');
      assert.equal(seen[seen.length - 1].phase, 'load');
      const image = { width: 64, height: 48, channels: 3 as const, data: new Uint8Array(64 * 48 * 3).fill(120) };
      const maps = await handle.infer(image, {});
      assert.equal(maps[0].classes, 21);
      assert.ok(maps[0].data.every(Number.isFinite));
      await handle.release();
    } finally {
      await pool.close();
    }
  });

  it('offline: the error names the URL, the cause and where to place the file by hand', async () => {
    const cacheDir = path.join(tmp, 'cache-c');
    await assert.rejects(preparePublished('site/offline', { cacheDir, retries: 0 }), (err: Error) => {
      assert.match(err.message, /http:\/\/127\.0\.0\.1:\d+\/x\.pth/);
      assert.match(err.message, /ECONNREFUSED/);
      assert.ok(err.message.includes(path.join(cacheDir, 'x.pth')), err.message);
      return true;
    });
  });

  it('the command line lists, fetches and imports', async () => {
    const out: string[] = [];
    const sink = { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream;
    assert.equal(await cli(['list', 'torchvision', 'resnet101'], sink, sink), 0);
    assert.ok(out.join('').includes('torchvision/deeplabv3_resnet101_coco'), out.join(''));
    out.length = 0;
    assert.equal(await cli(['fetch', 'site/jf-mobilenet', '--cache', path.join(tmp, 'cache-cli')], sink, sink), 0);
    const dir = out[out.length - 1].trim();
    assert.ok(fs.existsSync(path.join(dir, MANIFEST_FILE)), out.join(''));
    out.length = 0;
    const target = path.join(tmp, 'imported');
    assert.equal(await cli(['import', path.join(OUT, 'vgg-largefov.legacy.pth'), '--out', target, '--classes', VOC21.join(',')], sink, sink), 0);
    assert.match(out.join(''), /vgg-largefov layout, DeepLab v1 vgg16 \(21 classes, output stride 8\)/);
    assert.deepEqual(readSavedDir(target).manifest.classNames, VOC21);
    await assert.rejects(cli(['import', path.join(OUT, 'vgg-largefov.legacy.pth')], sink, sink), /--out/);
  });
});
