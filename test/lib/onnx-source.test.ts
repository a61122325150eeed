/**
 * ONNX files as a weights source, written by the real PyTorch (test/fixtures/torch/make_onnx_fixture.py,
 * Debian's python3-torch): torchvision's deeplabv3_mobilenet_v3_large exported with torch.onnx.export
 * as a user would (NCHW, output `out` resized to the input), a fixed-size export of it, and a small
 * network ending in softmax + upsampling + argmax (labels out). They run through the model cache in
 * the compute workers on ONNX Runtime, and deeplab-infer's output must give torch's results.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as path from 'path';
import sharp from 'sharp';
import { onnx } from 'onnx-proto';
import { crf, fuse, upsample } from '../../lib/compute/client';
import { ModelCache } from '../../lib/compute/model-cache';
import { WorkerPool } from '../../lib/compute/pool';
import { RawImage } from '../../lib/contract';
import { crfPreset } from '../../lib/crf/params';
import { cudaProviderInstalled } from '../../lib/engine/onnxruntime';
import { normalizeModelConfig, WeightsSource } from '../../lib/models/config';
import { softmaxScoreMap, upsampleScoreMap } from '../../lib/ops/score-map';
import { readWeights } from '../../lib/weights/load';
import { modelConfigFromProps } from '../../nodes/deeplab-model/model-props';
import { vocSample } from '../helpers/shared-data';
import { runTorchPython } from '../helpers/torch-python';

const OUT = path.resolve(__dirname, '../../../test-output/onnx-source');
const SCRIPT = path.resolve(__dirname, '../../../test/fixtures/torch/make_onnx_fixture.py');
const W = 97;
const H = 73;

function onnxConfig(file: string, extra: Partial<Extract<WeightsSource, { source: 'onnx' }>> = {}, classes = 21, backend = 'auto') {
  return normalizeModelConfig({
    spec: { classes },
    preprocessing: 'imagenet',
    weights: { source: 'onnx', path: path.join(OUT, file), ...extra },
    backend,
    classNames: Array.from({ length: classes }, (_, i) => `c${i}`),
  });
}

function agreement(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** NCHW [1, C, h, w] float32 file -> HWC. */
function hwcOf(file: string, classes: number, h: number, w: number): Float32Array {
  const b = fs.readFileSync(file);
  const chw = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  const out = new Float32Array(chw.length);
  for (let c = 0; c < classes; c++) for (let p = 0; p < h * w; p++) out[p * classes + c] = chw[c * h * w + p];
  return out;
}

describe('lib/weights + compute: ONNX files as a weights source (parity with PyTorch)', function () {
  this.timeout(600_000);
  const pool = new WorkerPool(2);
  const cache = new ModelCache(pool);
  let image: RawImage;
  let torchLabels: Uint8Array;

  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const rgb = await sharp(vocSample('vainf_582')).resize(W, H, { fit: 'fill' }).removeAlpha().raw().toBuffer();
    fs.writeFileSync(path.join(OUT, 'image.rgb'), rgb);
    image = { width: W, height: H, channels: 3, data: new Uint8Array(rgb) };
    runTorchPython(SCRIPT, [path.join(OUT, 'image.rgb'), String(W), String(H), OUT]);
    torchLabels = new Uint8Array(fs.readFileSync(path.join(OUT, 'tv-mnv3.labels.u8')));
  });
  after(() => pool.close());

  it("torchvision's deeplabv3 exported by torch.onnx.export gives torch's labels through deeplab-infer's maps and upsampling", async () => {
    const h = cache.acquire(onnxConfig('tv-mnv3.onnx'));
    try {
      const info = await h.ready();
      assert.equal(info.engine, 'onnxruntime');
      assert.match(info.backend, /^onnxruntime \((cpu|cuda)\)$/);
      assert.deepEqual(info.onnx?.trimmed, ['Resize'], 'the output was taken back past the Resize to the input size');
      assert.equal(info.logitStride, 16);
      assert.equal(info.alignCorners, false, "torchvision's Resize uses half-pixel centres");
      assert.equal(info.spec.classes, 21);
      const [map] = await h.infer(image, { resize: 'none' });
      assert.deepEqual([map.width, map.height, map.classes, map.stride, map.kind], [7, 5, 21, 16, 'logits']);
      const { labels } = upsampleScoreMap({ map, width: W, height: H, alignCorners: info.alignCorners, output: 'labels' });
      const agree = agreement(labels!.data, torchLabels);
      assert.ok(agree >= 0.999, `argmax agreement with torch ${agree}`);
      assert.ok(new Set(torchLabels).size >= 2, 'the reference has more than one class');
    } finally {
      await h.release();
    }
  });

  it('a fixed-size export (1 x 3 x 97 x 97) gives the free-size export\'s logits, runs smaller images padded and a flipped pair image by image, and refuses larger runs', async () => {
    const free = cache.acquire(onnxConfig('tv-mnv3.onnx'));
    const fixed = cache.acquire(onnxConfig('tv-mnv3-fixed.onnx'));
    try {
      const square: RawImage = { width: 97, height: 97, channels: 3, data: new Uint8Array(97 * 97 * 3).map((_, i) => (i * 31) % 256) };
      const [a] = await free.infer(square, { resize: 'none' });
      const [b, bf] = await fixed.infer(square, { resize: 'none', flip: true });
      assert.deepEqual([b.width, b.height, bf.flipped], [7, 7, true]);
      assert.ok(maxAbs(a.data, b.data) < 1e-4, `fixed vs free ${maxAbs(a.data, b.data)}`);
      const [small] = await fixed.infer(image, { resize: 'none' });
      assert.deepEqual([small.width, small.height], [7, 5]);
      await assert.rejects(fixed.infer(square, { resize: 'none', scales: [1.5] }), /takes images of 97x97 pixels at most/);
    } finally {
      await free.release();
      await fixed.release();
    }
  });

  it('a network ending in softmax, upsampling and argmax (labels out) is taken back to its logits at the stride', async () => {
    const h = cache.acquire(onnxConfig('labels.onnx', {}, 5));
    try {
      const info = await h.ready();
      assert.deepEqual(info.onnx?.trimmed, ['ArgMax', 'Resize', 'Softmax']);
      assert.equal(info.alignCorners, true);
      assert.equal(info.logitStride, 4);
      const [map] = await h.infer(image, { resize: 'none' });
      assert.deepEqual([map.width, map.height, map.classes], [25, 19, 5]);
      const probs = softmaxScoreMap(map).data;
      const want = hwcOf(path.join(OUT, 'labels.probs.f32'), 5, 19, 25);
      assert.ok(maxAbs(probs, want) < 1e-5, `probabilities differ by ${maxAbs(probs, want)}`);
    } finally {
      await h.release();
    }
  });

  it('a named output declared as probabilities becomes log-probabilities (the same softmax)', async () => {
    const model = onnx.ModelProto.decode(fs.readFileSync(path.join(OUT, 'labels.onnx')));
    const softmax = model.graph!.node!.find((n) => n.opType === 'Softmax')!.output![0];
    const h = cache.acquire(onnxConfig('labels.onnx', { output: softmax, outputKind: 'probs' }, 5));
    try {
      const info = await h.ready();
      assert.equal(info.onnx?.trimmed, undefined);
      const [map] = await h.infer(image, { resize: 'none' });
      const want = hwcOf(path.join(OUT, 'labels.probs.f32'), 5, 19, 25);
      assert.ok(maxAbs(softmaxScoreMap(map).data, want) < 1e-5);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(Math.exp(map.data[i]) - want[i]));
      assert.ok(worst < 1e-5, 'the logits are the log-probabilities');
    } finally {
      await h.release();
    }
  });

  it('runs on both compute workers at once (ONNX Runtime in two worker threads)', async () => {
    // Two cache entries of one file (two engine choices): the pool places them on its two workers.
    const a = cache.acquire(onnxConfig('tv-mnv3.onnx', {}, 21, 'onnxruntime'));
    const b = cache.acquire(onnxConfig('tv-mnv3.onnx', {}, 21, 'onnxruntime-cpu'));
    try {
      await Promise.all([a.ready(), b.ready()]);
      const [wa, wb] = cache.stats().map((s) => s.worker);
      assert.notEqual(wa, wb);
      const runs = await Promise.all([a, b, a, b].map((h) => h.infer(image, { resize: 'none', flip: true })));
      for (const r of runs.slice(1)) assert.ok(maxAbs(r[0].data, runs[0][0].data) < 1e-5);
    } finally {
      await a.release();
      await b.release();
    }
  });

  it("deeplab-infer's maps of it go through msc-fusion, upsample and dense-crf as any model's", async () => {
    const h = cache.acquire(onnxConfig('tv-mnv3.onnx'));
    try {
      const info = await h.ready();
      const maps = await h.infer(image, { resize: 'none', scales: [0.75, 1], flip: true });
      assert.deepEqual(maps.map((m) => [m.scale, !!m.flipped, m.stride]), [[0.75, false, 16], [0.75, true, 16], [1, false, 16], [1, true, 16]]);
      const fused = await fuse(maps, { method: 'mean-probs', alignCorners: info.alignCorners }, pool);
      assert.deepEqual([fused.width, fused.height, fused.kind], [7, 5, 'probs']);
      const up = await upsample(fused, W, H, info.alignCorners, 'probs', undefined, pool);
      const refined = await crf({ map: up.map!, image, params: crfPreset('deeplab-v2') }, pool);
      assert.deepEqual([refined.labels.width, refined.labels.height], [W, H]);
      const agree = agreement(refined.labels.data, torchLabels);
      assert.ok(agree > 0.8, `the refined labels still follow torch's (${agree})`);
    } finally {
      await h.release();
    }
  });

  it('loads from an http(s) URL, and the editor\'s properties make an ONNX config', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/m/labels.onnx') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(fs.readFileSync(path.join(OUT, 'labels.onnx')));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const config = modelConfigFromProps({ weightsSource: 'onnx', onnxModel: `${base}/m/labels.onnx`, classPreset: 'custom', customClasses: 'a, b, c, d, e', backend: 'onnxruntime-cpu' });
      assert.deepEqual(config.weights, { source: 'onnx', url: `${base}/m/labels.onnx`, output: undefined, layout: 'auto', outputKind: 'logits' });
      assert.equal(config.preprocessing, 'imagenet', 'a foreign file defaults to ImageNet normalisation');
      const h = cache.acquire(config);
      try {
        assert.equal((await h.ready()).spec.classes, 5);
      } finally {
        await h.release();
      }
      const missing = cache.acquire({ ...config, weights: { source: 'onnx', url: `${base}/m/nope.onnx` } });
      await assert.rejects(missing.ready(), /HTTP 404/);
      await missing.release();
    } finally {
      server.close();
    }
    const local = modelConfigFromProps({ weightsSource: 'onnx', onnxModel: 'models/x.onnx', onnxLayout: 'nhwc', onnxOutput: ' logits ', onnxOutputKind: 'probs', preprocessing: 'tanh' }, '/srv/nr');
    assert.deepEqual(local.weights, { source: 'onnx', path: '/srv/nr/models/x.onnx', output: 'logits', layout: 'nhwc', outputKind: 'probs' });
    assert.equal(local.preprocessing, 'tanh');
    assert.throws(() => modelConfigFromProps({ weightsSource: 'onnx' }), /set its .onnx file/);
    assert.throws(() => modelConfigFromProps({ weightsSource: 'onnx', onnxModel: 'x.onnx', onnxLayout: 'chw' }), /unknown ONNX input layout "chw"/);
    assert.throws(() => modelConfigFromProps({ weightsSource: 'onnx', onnxModel: 'x.onnx', backend: 'webgl' }), /unknown backend "webgl"/);
  });

  it('asking for CUDA where its provider does not load falls back to the CPU and says so', async () => {
    const h = cache.acquire(onnxConfig('labels.onnx', {}, 5, 'onnxruntime-cuda'));
    try {
      const info = await h.ready();
      if (info.provider === 'cuda') {
        assert.ok(cudaProviderInstalled(), 'CUDA ran, so its provider is installed');
        assert.equal(info.backend, 'onnxruntime (cuda)');
        return;
      }
      assert.equal(info.provider, 'cpu');
      assert.equal(info.backend, 'onnxruntime (cpu, CUDA did not load)');
      assert.match(info.engineNote ?? '', /^asked for onnxruntime-cuda: onnxruntime \(cuda\): the CUDA provider did not load: .+; running on onnxruntime \(cpu\)$/);
      const [map] = await h.infer(image, { resize: 'none' });
      assert.equal(map.classes, 5);
    } finally {
      await h.release();
    }
  });

  it('closing the pool while ONNX Runtime runs a forward pass ends the worker between tasks (terminate() then would abort the process)', async () => {
    const own = new WorkerPool(1);
    const h = new ModelCache(own).acquire(onnxConfig('tv-mnv3.onnx', {}, 21, 'onnxruntime-cpu'));
    await h.ready();
    const big: RawImage = { width: 321, height: 321, channels: 3, data: new Uint8Array(321 * 321 * 3).fill(90) };
    const runs = [1, 2, 3].map(() => h.infer(big, { resize: 'none' }).then(() => 'ok', (e: Error) => e.message));
    // Close once the first pass has reached the worker: it finishes, whatever the worker is doing.
    while (!own.busy) await new Promise((r) => setTimeout(r, 1));
    await own.close();
    const out = await Promise.all(runs);
    assert.equal(out[0], 'ok', 'the pass in flight finished');
    assert.ok(out.slice(1).every((r) => r === 'ok' || r === 'compute worker was closed'), out.join(', '));
  });

  it('refuses what it cannot run, saying why', async () => {
    const bad = path.join(OUT, 'not-a-model.onnx');
    fs.writeFileSync(bad, 'hello, not protobuf at all');
    const cases: [ReturnType<typeof onnxConfig>, RegExp][] = [
      [onnxConfig('tv-mnv3.onnx', {}, 5), /logits have 21 classes but the model config names 5/],
      [onnxConfig('not-a-model.onnx'), /is not an ONNX model/],
      [onnxConfig('missing.onnx'), /does not exist/],
      [onnxConfig('tv-mnv3.onnx', { output: 'nope' }), /has no tensor "nope"/],
      [onnxConfig('tv-mnv3.onnx', { layout: 'nhwc' }), /does not have 3 channels where layout NHWC puts them/],
      [onnxConfig('labels.onnx', { output: 'labels' }, 5), /is int64, not float32 logits/],
    ];
    for (const [config, re] of cases) {
      const h = cache.acquire(config);
      try {
        await assert.rejects(h.ready(), re);
      } finally {
        await h.release();
      }
    }
    await assert.rejects(readWeights({ source: 'onnx', path: path.join(OUT, 'tv-mnv3.onnx') }), /is an ONNX model: it runs as it is/);
    assert.throws(() => normalizeModelConfig({ weights: { source: 'onnx' } as WeightsSource }), /needs a path/);
  });
});
