/**
 * TF.js graph models as a weights source: a small DeepLab-shaped graph written by hand
 * (test/helpers/tfjs-graph-fixture) loads from a folder, a model.json path, a URL and a published
 * entry; its logits equal values computed with plain loops, through the forward wrapper and through
 * the model cache; nothing leaks; hot swap and save are refused; bad locations and names say why.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { AddressInfo } from 'net';
import * as tf from '@tensorflow/tfjs';
import { engineMemory } from '../../lib/compute/client';
import { ModelCache } from '../../lib/compute/model-cache';
import { WorkerPool } from '../../lib/compute/pool';
import { RawImage, ScoreMap } from '../../lib/contract';
import { planInference } from '../../lib/inference/plan';
import { predictPlan } from '../../lib/inference/predict';
import { normalizeModelConfig } from '../../lib/models/config';
import { modelConfigFromProps } from '../../nodes/deeplab-model/model-props';
import { reloadPublished } from '../../lib/weights/catalogue';
import { readWeights } from '../../lib/weights/load';
import { preparePublished } from '../../lib/weights/published';
import { loadGraphSegmenter } from '../../lib/weights/tfjs-graph';
import { expectedLogits, GraphFixture, testImage, writeGraphModel } from '../helpers/tfjs-graph-fixture';
import { tfReady } from '../helpers/tf-setup';

const OUT = path.resolve(__dirname, '../../../test-output/tfjs-graph');
const NAMES = ['background', 'road', 'tree', 'sky'];

function near(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-4): void {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst < tol, `max abs difference ${worst}`);
}

function checkMap(map: ScoreMap, f: GraphFixture, img: RawImage): void {
  const want = expectedLogits(f, img);
  assert.deepEqual([map.width, map.height, map.classes, map.kind, map.stride], [want.width, want.height, f.classes, 'logits', 2]);
  near(map.data, want.data);
}

function mirror(img: RawImage): RawImage {
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) data.set(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3), (y * img.width + img.width - 1 - x) * 3);
  }
  return { ...img, data };
}

describe('lib/weights: TF.js graph models', function () {
  this.timeout(600_000);
  let f: GraphFixture;
  let server: http.Server;
  let base = '';
  const img = testImage(7, 9);

  before(async () => {
    await tfReady();
    fs.rmSync(OUT, { recursive: true, force: true });
    f = writeGraphModel(path.join(OUT, 'deeplab'));
    writeGraphModel(path.join(OUT, 'renamed'), { logitsName: 'head/BiasAdd' });
    fs.mkdirSync(path.join(OUT, 'empty'), { recursive: true });
    // Serves test-output/tfjs-graph; the shards must carry the model URL's query (as TF Hub's do).
    server = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const file = path.join(OUT, decodeURIComponent(u.pathname));
      if (u.searchParams.get('tfjs-format') !== 'file' || !file.startsWith(OUT) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200).end(fs.readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((r) => server.close(r));
  });

  it('loads from a folder: input, logits node, classes, stride; logits equal the hand-computed ones; no leak', async () => {
    const before = tf.memory().numTensors;
    const g = await loadGraphSegmenter(f.dir);
    assert.deepEqual(
      [g.info.input, g.info.logitsNode, g.info.classes, g.info.logitStride, g.info.alignCorners],
      ['ImageTensor', 'logits/semantic/BiasAdd', 4, 2, true],
    );
    assert.equal(g.info.params, f.params);
    const held = tf.memory().numTensors;
    const x = tf.tensor4d(Float32Array.from(img.data), [1, img.height, img.width, 3]);
    const logits = g.forward(x);
    const want = expectedLogits(f, img);
    assert.deepEqual(logits.shape, [1, want.height, want.width, 4]);
    near(logits.dataSync(), want.data);
    tf.dispose([x, logits]);
    assert.equal(tf.memory().numTensors, held, 'a forward pass leaves no tensor');
    g.dispose();
    assert.equal(tf.memory().numTensors, before, 'dispose frees the graph\'s weights');
  });

  it('through the forward wrapper: the flipped copy runs image by image (batch of one) and is the mirrored image\'s map', async () => {
    const g = await loadGraphSegmenter(path.join(f.dir, 'model.json'));
    try {
      const held = tf.memory().numTensors;
      const maps = await predictPlan(g, img, planInference(img.width, img.height, g.planStride, { resize: 'none', flip: true }));
      assert.equal(tf.memory().numTensors, held);
      assert.deepEqual(maps.map((m) => m.flipped), [false, true]);
      checkMap(maps[0], f, img);
      checkMap(maps[1], f, mirror(img));
      // 'valid': resized to k * 2 + 1 sides, every cell on an input pixel.
      const [valid] = await predictPlan(g, testImage(40, 30), planInference(40, 30, g.planStride, { resize: 'valid', size: 33 }));
      assert.deepEqual([valid.width, valid.height], [17, 13]);
    } finally {
      g.dispose();
    }
  });

  it('loads from an http(s) URL (folder or model.json, shards relative to it)', async () => {
    for (const url of [`${base}/deeplab/?tfjs-format=file`, `${base}/deeplab/model.json?tfjs-format=file`]) {
      const g = await loadGraphSegmenter(url);
      try {
        const [map] = await predictPlan(g, img, planInference(img.width, img.height, g.planStride, { resize: 'none' }));
        checkMap(map, f, img);
      } finally {
        g.dispose();
      }
    }
    await assert.rejects(loadGraphSegmenter(`${base}/nothing/model.json?tfjs-format=file`), /HTTP 404/);
  });

  it('finds the logits through ArgMax <- ResizeBilinear when they have another name, or takes the named node', async () => {
    const before = tf.memory().numTensors;
    const g = await loadGraphSegmenter(path.join(OUT, 'renamed'));
    assert.deepEqual([g.info.logitsNode, g.info.logitStride], ['head/BiasAdd', 2]);
    g.dispose();
    const named = await loadGraphSegmenter(f.dir, { logitsNode: 'logits/semantic/Conv2D' });
    assert.deepEqual([named.info.logitsNode, named.info.classes], ['logits/semantic/Conv2D', 4]);
    named.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('says why for a folder without model.json, a missing path, a graph without the named node, a missing shard', async () => {
    await assert.rejects(loadGraphSegmenter(path.join(OUT, 'empty')), /no model\.json in .*empty: a TF\.js graph model is a folder holding model\.json/);
    await assert.rejects(loadGraphSegmenter(path.join(OUT, 'nowhere')), /nowhere does not exist/);
    await assert.rejects(loadGraphSegmenter(f.dir, { logitsNode: 'logits/semantic/Nope' }), /the graph has no node "logits\/semantic\/Nope".*logits\/semantic\/BiasAdd/);
    const broken = path.join(OUT, 'broken');
    writeGraphModel(broken);
    fs.rmSync(path.join(broken, 'group1-shard1of1.bin'));
    await assert.rejects(loadGraphSegmenter(broken), /weight shard "group1-shard1of1\.bin" listed in .*model\.json cannot be read/);
    assert.throws(() => normalizeModelConfig({ weights: { source: 'tfjs-graph' } }), /needs a path .* or a URL/);
    assert.throws(() => normalizeModelConfig({ weights: { source: 'tfjs-graph', url: 'ftp://x/model.json' } }), /must start with http/);
    await assert.rejects(readWeights({ source: 'tfjs-graph', path: f.dir }), /is a TF\.js graph model: it runs as a graph for inference, but cannot give weights/);
  });

  it('the editor\'s properties make a tfjs-graph config (path relative to the user directory, or a URL)', () => {
    const c = modelConfigFromProps({ weightsSource: 'tfjs-graph', graphModel: 'deeplab', graphLogitsNode: ' head/BiasAdd ', classPreset: 'custom', customClasses: NAMES.join(', ') }, OUT);
    assert.deepEqual(c.weights, { source: 'tfjs-graph', path: f.dir, logitsNode: 'head/BiasAdd' });
    assert.deepEqual(c.classNames, NAMES);
    const u = modelConfigFromProps({ weightsSource: 'tfjs-graph', graphModel: `${base}/deeplab/`, classPreset: 'voc21' });
    assert.deepEqual(u.weights, { source: 'tfjs-graph', url: `${base}/deeplab/`, logitsNode: undefined });
    assert.throws(() => modelConfigFromProps({ weightsSource: 'tfjs-graph' }), /set its folder/);
  });

  describe('through the model cache', () => {
    const pool = new WorkerPool(1);
    const cache = new ModelCache(pool);
    const config = { spec: { classes: 4 }, classNames: NAMES, weights: { source: 'tfjs-graph' as const, path: path.join(OUT, 'deeplab') } };
    after(() => pool.close());

    it('infers logits at the graph\'s stride; refuses hot swap and save; publish skips it; release frees it', async () => {
      const h = cache.acquire(config);
      const info = await h.ready();
      assert.deepEqual([info.graph?.classes, info.graph?.logitStride, info.spec.classes, info.classNames], [4, 2, 4, NAMES]);
      const slot = pool.workers[0];
      const held = (await engineMemory(slot)).numTensors;
      const [map] = await h.infer(img, { resize: 'none' });
      checkMap(map, f, img);
      const maps = await h.infer(img, { resize: 'pad', size: 33, scales: [0.5, 1], flip: true });
      assert.equal(maps.length, 4);
      assert.equal((await engineMemory(slot)).numTensors, held, 'forward passes leave no tensor in the worker');
      assert.equal(await cache.publish({ dir: path.join(OUT, 'no-checkpoint') }, () => true), 0, 'a graph model is never hot-swapped');
      await assert.rejects(cache.save(h, path.join(OUT, 'saved')), /saving is for this package's networks: this model is a TF\.js graph model/);
      await h.release();
      assert.equal((await engineMemory(slot)).numTensors, 0);
    });

    it('refuses class names that do not fit the graph\'s logits', async () => {
      const h = cache.acquire({ ...config, spec: { classes: 3 }, classNames: NAMES.slice(0, 3) });
      await assert.rejects(h.ready(), /logits have 4 classes but the model config names 3/);
      await h.release();
    });
  });

  describe('as a published entry (site catalogue, local server)', () => {
    const savedEnv = process.env.DEEPLAB_CATALOGUE;
    let pool: WorkerPool;
    const cacheDir = path.join(OUT, 'cache');

    before(() => {
      const catalogue = path.join(OUT, 'site-catalogue.json');
      fs.writeFileSync(catalogue, JSON.stringify({
        entries: [{
          id: 'site/tiny-graph', title: 'a hand-written graph', url: `${base}/deeplab/model.json?tfjs-format=file`, fileName: 'tiny-graph/model.json',
          unverified: 'a test file', format: 'tfjs-graph', layout: 'tfjs-deeplab',
          spec: { variant: 'v3', backbone: 'mobilenetv2', classes: 4, outputStride: 16 }, dataset: 'none', classNames: NAMES,
          preprocessing: 'tanh', score: { metric: 'mIoU', value: 1, on: 'nothing' }, license: 'test', source: 'https://example.org/test',
        }],
      }));
      process.env.DEEPLAB_CATALOGUE = catalogue;
      reloadPublished();
      pool = new WorkerPool(1); // made now: its worker sees DEEPLAB_CATALOGUE
    });

    after(async () => {
      await pool.close();
      if (savedEnv === undefined) delete process.env.DEEPLAB_CATALOGUE;
      else process.env.DEEPLAB_CATALOGUE = savedEnv;
      reloadPublished();
    });

    it('downloads model.json and its shard, and runs through the model cache', async () => {
      const file = await preparePublished('site/tiny-graph', { cacheDir });
      assert.equal(file, path.join(cacheDir, 'tiny-graph', 'model.json'));
      assert.ok(fs.existsSync(path.join(cacheDir, 'tiny-graph', 'group1-shard1of1.bin')));
      const cache = new ModelCache(pool);
      const h = cache.acquire(modelConfigFromProps({ weightsSource: 'published', publishedId: 'site/tiny-graph', weightsCache: cacheDir }));
      const [map] = await h.infer(img, { resize: 'none' });
      checkMap(map, f, img);
      await h.release();
      await assert.rejects(readWeights({ source: 'published', id: 'site/tiny-graph', cacheDir }), /"site\/tiny-graph" is a TF\.js graph model/);
    });
  });
});
