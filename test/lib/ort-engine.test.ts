/**
 * Our networks on ONNX Runtime: the exported graph behind the forward wrapper gives tfjs's maps for
 * every scale and flip; the model host picks the engine per model, caches the export on disk next
 * to the weights (reused, and replaced when the weights change), and a hot swap rebuilds the
 * session without refusing a frame.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { ModelCache } from '../../lib/compute/model-cache';
import { loadModel, releaseModel } from '../../lib/compute/model-host';
import { WorkerPool } from '../../lib/compute/pool';
import { ScoreMap } from '../../lib/contract';
import { cudaProviderInstalled, createSession } from '../../lib/engine/onnxruntime';
import { planInference } from '../../lib/inference/plan';
import { OrtSegNet } from '../../lib/inference/ort-net';
import { deeplabNet, predictPlan, SyncSegNet } from '../../lib/inference/predict';
import { normalizeModelConfig } from '../../lib/models/config';
import { DeepLab, ModelSpec } from '../../lib/models/deeplab';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT } from '../../lib/models/onnx/export';
import { Preprocessing } from '../../lib/models/preprocess';
import { readSavedDir, saveModel } from '../../lib/weights/format';
import { ONNX_CACHE_FOLDER } from '../../lib/weights/onnx-cache';
import { tfReady } from '../helpers/tf-setup';
import { testImage } from '../helpers/test-image';

interface Parity {
  rel: number;
  argmax: number;
}

/** Max abs difference over the reference's range, and the argmax agreement, of two lists of maps. */
function parity(got: ScoreMap[], want: ScoreMap[]): Parity {
  assert.equal(got.length, want.length);
  let maxAbs = 0;
  let lo = Infinity;
  let hi = -Infinity;
  let agree = 0;
  let cells = 0;
  for (let m = 0; m < want.length; m++) {
    const [a, b] = [got[m], want[m]];
    assert.deepEqual([a.width, a.height, a.classes, a.stride, a.scale, a.flipped], [b.width, b.height, b.classes, b.stride, b.scale, b.flipped]);
    for (let i = 0; i < b.data.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(a.data[i] - b.data[i]));
      lo = Math.min(lo, b.data[i]);
      hi = Math.max(hi, b.data[i]);
    }
    const C = b.classes;
    for (let p = 0; p < b.width * b.height; p++, cells++) {
      let ia = 0;
      let ib = 0;
      for (let c = 1; c < C; c++) {
        if (a.data[p * C + c] > a.data[p * C + ia]) ia = c;
        if (b.data[p * C + c] > b.data[p * C + ib]) ib = c;
      }
      if (ia === ib) agree++;
    }
  }
  return { rel: maxAbs / (hi - lo), argmax: agree / cells };
}

async function ortNetOf(model: DeepLab, pre: Preprocessing): Promise<OrtSegNet> {
  const tfNet = deeplabNet(model, pre);
  const session = await createSession(exportOnnx(model), { provider: 'cpu', threads: 1 });
  return new OrtSegNet(session, {
    input: ONNX_INPUT, inputType: 'float32', layout: 'nhwc', batch: null, height: null, width: null,
    output: ONNX_OUTPUT, outputKind: 'logits', trimmed: [], metadata: {}, ours: true, params: 0,
  }, 'cpu', tfNet);
}

/** Batch-norm statistics and scales in a trained range (a fresh network's are 0 / 1: too easy a test for folding). */
function trainedLooking(model: DeepLab): void {
  let k = 0;
  for (const [name, v] of model.store.all()) {
    k++;
    const u = (lo: number, hi: number) => tf.randomUniform(v.shape, lo, hi, 'float32', k);
    if (name.endsWith('.running_var')) v.assign(u(0.5, 2));
    else if (name.endsWith('.running_mean')) v.assign(u(-0.3, 0.3));
    else if (name.endsWith('.gamma')) v.assign(u(0.5, 1.5));
    else if (name.endsWith('.beta')) v.assign(u(-0.2, 0.2));
  }
}

describe('lib/inference + compute: our networks on ONNX Runtime', function () {
  this.timeout(600_000);
  before(() => tfReady());
  const table: string[] = [];
  after(() => {
    if (table.length) console.log(`      ORT vs tfjs through predictPlan (4 maps)      max abs / range   argmax\n${table.map((r) => `      ${r}`).join('\n')}`);
  });

  const cases: [string, Partial<ModelSpec>, Preprocessing][] = [
    ['v3+ MobileNetV2 x0.25 (corners aligned)', { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.25, classes: 5, seed: 3 }, 'tanh'],
    ['v3 ResNet-50 torchvision layout, 1 block per layer, x0.125 (half-pixel centres)', { variant: 'v3', backbone: 'resnet50', layout: 'torchvision', blocks: [1, 1, 1, 1], width: 0.125, classes: 4, outputStride: 8, seed: 4 }, 'imagenet'],
  ];
  for (const [name, spec, pre] of cases) {
    it(`${name}: the whole wrapper (scales 0.5 / 1, flip, padding) gives tfjs's maps`, async () => {
      const model = new DeepLab(spec);
      trainedLooking(model);
      const ort = await ortNetOf(model, pre);
      try {
        const tfNet: SyncSegNet = deeplabNet(model, pre);
        const img = testImage(70, 45);
        const plan = planInference(img.width, img.height, tfNet.planStride, { resize: 'pad', size: 97, scales: [0.5, 1], flip: true });
        const before = tf.memory().numTensors;
        const got = await predictPlan(ort, img, plan);
        assert.equal(tf.memory().numTensors, before, 'no tensor left behind by the ORT path');
        const want = await predictPlan(tfNet, img, plan);
        assert.equal(got.length, 4);
        const p = parity(got, want);
        table.push(`${name.split(/[,(]/)[0].trim().padEnd(46)} ${p.rel.toExponential(1).padEnd(17)} ${(100 * p.argmax).toFixed(2)} %`);
        assert.ok(p.rel < 1e-4, `max abs / range ${p.rel}`);
        assert.ok(p.argmax >= 0.999, `argmax agreement ${p.argmax}`);
      } finally {
        await ort.release();
        model.dispose();
      }
    });
  }

  describe('the model host (main thread here)', () => {
    let dir: string;
    const spec = { variant: 'v3plus' as const, backbone: 'mobilenetv2' as const, width: 0.125, classes: 3 };
    beforeEach(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-ort-cache-'));
      const m = new DeepLab({ ...spec, seed: 5 });
      await saveModel(m, dir, 'tanh');
      m.dispose();
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
    const config = (backend = 'onnxruntime-cpu') => normalizeModelConfig({ spec, weights: { source: 'dir', path: dir }, backend, warmupSize: 33 });
    const onnxFiles = () => fs.readdirSync(path.join(dir, ONNX_CACHE_FOLDER)).filter((f) => f.endsWith('.onnx'));

    it('caches the export next to the weights: a second load reuses it, new weights replace it', async () => {
      const first = await loadModel('a', config());
      assert.equal(first.engine, 'onnxruntime');
      assert.equal(first.backend, 'onnxruntime (cpu)');
      assert.equal(first.onnx?.from, 'export');
      assert.ok(first.onnx?.file && fs.existsSync(first.onnx.file));
      const img = testImage(40, 30);
      const { inferMaps } = await import('../../lib/compute/model-host');
      const [m1] = await inferMaps({ key: 'a', image: img, options: { size: 65 } });
      await releaseModel('a');

      const second = await loadModel('b', config());
      assert.equal(second.onnx?.from, 'cache', 'the second load reads the cached export');
      assert.equal(second.onnx?.file, first.onnx?.file);
      const [m2] = await inferMaps({ key: 'b', image: img, options: { size: 65 } });
      assert.deepEqual(m2.data, m1.data);
      await releaseModel('b');

      // A damaged cached file (cut short) is exported again rather than failing the load.
      const whole = fs.readFileSync(first.onnx!.file!);
      fs.writeFileSync(first.onnx!.file!, whole.subarray(0, whole.length >> 1));
      const repaired = await loadModel('r', config());
      assert.deepEqual([repaired.engine, repaired.onnx?.from], ['onnxruntime', 'export']);
      assert.equal(fs.statSync(first.onnx!.file!).size, whole.length, 'the cache holds a whole export again');
      await releaseModel('r');

      // New weights in the folder: the cached export no longer fits, it is exported again and replaces the old file.
      const other = new DeepLab({ ...spec, seed: 6 });
      await saveModel(other, dir, 'tanh');
      other.dispose();
      const third = await loadModel('c', config());
      assert.equal(third.onnx?.from, 'export');
      assert.notEqual(third.onnx?.file, first.onnx?.file);
      assert.deepEqual(onnxFiles(), [path.basename(third.onnx!.file!)]);
      const [m3] = await inferMaps({ key: 'c', image: img, options: { size: 65 } });
      let diff = 0;
      for (let i = 0; i < m3.data.length; i++) diff = Math.max(diff, Math.abs(m3.data[i] - m1.data[i]));
      assert.ok(diff > 1e-3, 'the new weights are the ones running');
      await releaseModel('c');
    });

    it('auto picks ONNX Runtime on the CPU here (no CUDA provider, no tfjs-node); wasm stays on tfjs', async function () {
      let tfjsNode = false;
      for (const p of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
        try {
          require.resolve(p);
          tfjsNode = true;
        } catch {
          // not installed
        }
      }
      const auto = await loadModel('auto', config('auto'));
      await releaseModel('auto');
      if (cudaProviderInstalled() || tfjsNode || tf.getBackend() !== 'wasm') {
        assert.ok(auto.backend.length > 0); // another machine: its own order applies (engine-choice.test.ts covers it)
      } else {
        assert.equal(auto.backend, 'onnxruntime (cpu)');
        assert.equal(auto.engineNote, undefined, 'nothing surprising to tell');
      }
      const wasm = await loadModel('wasm', config('wasm'));
      await releaseModel('wasm');
      assert.deepEqual([wasm.engine, wasm.backend], ['tfjs', 'wasm']);
      assert.equal(wasm.onnx, undefined);
    });
  });

  describe('hot swap through the model cache (compute workers)', () => {
    const pool = new WorkerPool(1);
    const cache = new ModelCache(pool);
    after(() => pool.close());

    it('rebuilds the session for the new weights; frames queued around the swap all come back', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-ort-swap-'));
      const spec = { variant: 'v3plus' as const, backbone: 'mobilenetv2' as const, width: 0.125, classes: 4 };
      try {
        const trained = new DeepLab({ ...spec, seed: 42 });
        trainedLooking(trained);
        await saveModel(trained, dir, 'tanh');
        trained.dispose();

        const live = cache.acquire({ spec, backend: 'onnxruntime-cpu', warmupSize: 33 });
        const info = await live.ready();
        assert.equal(info.backend, 'onnxruntime (cpu)');
        const img = testImage(50, 40);
        const [before] = await live.infer(img, { size: 65 });
        // Frames before and after the publish, all in flight while the session is rebuilt.
        const early = [live.infer(img, { size: 65 }), live.infer(img, { size: 65 })];
        const swapped = cache.publish({ dir }, (c) => c.spec.classes === 4);
        const late = [live.infer(img, { size: 65 }), live.infer(img, { size: 65 })];
        assert.equal(await swapped, 1);
        const frames = await Promise.all([...early, ...late]);
        assert.equal(frames.length, 4, 'no frame refused');
        assert.deepEqual(frames[0][0].data, before.data, 'frames sent before the publish ran on the old weights');

        // The new weights' logits, on tfjs in this thread.
        const ref = new DeepLab(spec);
        const { assignWeights } = await import('../../lib/weights/format');
        assignWeights(ref, readSavedDir(dir));
        const want = await predictPlan(deeplabNet(ref, 'tanh'), img, planInference(img.width, img.height, ref.spec.outputStride, { size: 65 }));
        ref.dispose();
        for (const f of frames.slice(2)) {
          const p = parity(f, want);
          assert.ok(p.rel < 1e-4 && p.argmax >= 0.999, `after the swap: ${JSON.stringify(p)}`);
        }
        assert.equal(cache.stats()[0].loads, 1, 'swapped, not reloaded');
        await live.release();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
