/**
 * Training building blocks against hand-computed references: poly schedule, parameter groups,
 * SGD with momentum, the loss (value and finite-difference gradients), label resizing, MSC
 * fusion, augmentation, the synthetic set, batch order, loaders and checkpoint files.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { AugmentOptions, augment, drawAugment } from '../../lib/data/augment';
import { padValueFor } from '../../lib/models/preprocess';
import { syntheticDataset, syntheticSample } from '../../lib/data/synthetic';
import { assertGradients, randomTensor } from '../../lib/engine/gradcheck';
import { DeepLab } from '../../lib/models/deeplab';
import { serialize } from '../../lib/weights/format';
import {
  checkpointName, clearCheckpoints, findLatestCheckpoint, LATEST_FILE, listCheckpoints, readCheckpoint, writeCheckpoint,
} from '../../lib/training/checkpoint';
import { normalizeTrainConfig } from '../../lib/training/config';
import { InlineLoader, makeBatch, openSource, SampleOrder } from '../../lib/training/data';
import { crossEntropy, maxFusion, mscLoss, mscSize, resizeLabelsNearest, segmentationLoss } from '../../lib/training/loss';
import { paramRule, polyLr, SgdMomentum } from '../../lib/training/optimizer';
import { mix32, Rng } from '../../lib/runtime/random';
import { CheckpointInfo, Trainer } from '../../lib/training/trainer';
import { readSavedDir } from '../../lib/weights/format';
import { crfGridSearch, PAPER_CRF_GRID } from '../../lib/training/crf-search';
import { syntheticScores } from '../../lib/crf/synthetic';
import { denseCrf } from '../../lib/crf/dense-crf';
import { ConfusionMatrix } from '../../lib/metrics/confusion';
import { argmaxScoreMap } from '../../lib/ops/score-map';
import { WorkerLoader } from '../../lib/training/worker-loader';
import { trainSetupFromProps } from '../../nodes/train/train-props';
import { normalizeModelConfig } from '../../lib/models/config';
import { tfReady } from '../helpers/tf-setup';
import { dropout } from '../../lib/models/layers';

const near = (a: number, b: number, tol = 1e-6, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} != ${b} (tolerance ${tol})`);
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-train-'));

describe('lib/training: building blocks', () => {
  before(async () => {
    await tfReady();
  });

  describe('schedule and optimiser', () => {
    it('poly learning rate lr (1 - iter/max)^power', () => {
      near(polyLr(0.01, 0, 100, 0.9), 0.01, 1e-15);
      near(polyLr(0.01, 50, 100, 0.9), 0.01 * Math.pow(0.5, 0.9), 1e-15);
      near(polyLr(2.5e-4, 19999, 20000, 0.9), 2.5e-4 * Math.pow(1 / 20000, 0.9), 1e-18);
      assert.equal(polyLr(0.01, 100, 100, 0.9), 0);
      assert.equal(polyLr(0.01, 120, 100, 0.9), 0);
    });

    it('parameter groups: backbone x1, head x10, head biases x20 without decay, BN without decay', () => {
      const c = { backboneLrMult: 1, headLrMult: 10, biasLrFactor: 2, biasDecay: false, bnDecay: false };
      assert.deepEqual(paramRule('backbone.layer1.0.conv1.weight', c), { group: 'backbone', lrMult: 1, decayMult: 1 });
      assert.deepEqual(paramRule('backbone.conv1_1.bias', c), { group: 'backbone-bias', lrMult: 2, decayMult: 0 });
      assert.deepEqual(paramRule('backbone.bn1.gamma', c), { group: 'backbone-bn', lrMult: 1, decayMult: 0 });
      assert.deepEqual(paramRule('head.aspp.0.weight', c), { group: 'head', lrMult: 10, decayMult: 1 });
      assert.deepEqual(paramRule('head.aspp.3.bias', c), { group: 'head-bias', lrMult: 20, decayMult: 0 });
      assert.deepEqual(paramRule('head.classifier.bias', c), { group: 'head-bias', lrMult: 20, decayMult: 0 });
      assert.deepEqual(paramRule('aux.conv.bn.beta', c), { group: 'head-bn', lrMult: 10, decayMult: 0 });
      assert.deepEqual(paramRule('head.fc8.bias', { ...c, biasDecay: true }), { group: 'head-bias', lrMult: 20, decayMult: 1 });
    });

    it('SGD with momentum and weight decay matches PyTorch\'s update by hand; state round-trips', async () => {
      const w = tf.variable(tf.tensor1d([1, -2]), true);
      const b = tf.variable(tf.tensor1d([0.5]), true);
      const opt = new SgdMomentum([
        { name: 'w', variable: w, lrMult: 10, decayMult: 1 },
        { name: 'b', variable: b, lrMult: 20, decayMult: 0 },
      ], 0.9, 0.1);
      const g1 = new Map<string, tf.Tensor>([['w', tf.tensor1d([0.5, 1])], ['b', tf.tensor1d([2])]]);
      opt.apply(g1, 0.01);
      // w: d = g + 0.1 w = [0.6, 0.8]; buf = d; w -= 0.1 * buf -> [0.94, -2.08]. b: d = 2; w -= 0.2 * 2 -> 0.1.
      let wv = w.dataSync();
      near(wv[0], 0.94, 1e-6);
      near(wv[1], -2.08, 1e-6);
      near(b.dataSync()[0], 0.1, 1e-6);
      const g2 = new Map<string, tf.Tensor>([['w', tf.tensor1d([0, 0])], ['b', tf.tensor1d([-1])]]);
      opt.apply(g2, 0.005);
      // w: d = 0.1 * [0.94, -2.08] = [0.094, -0.208]; buf = 0.9 [0.6, 0.8] + d = [0.634, 0.512]; w -= 0.05 buf.
      wv = w.dataSync();
      near(wv[0], 0.94 - 0.05 * 0.634, 1e-6);
      near(wv[1], -2.08 - 0.05 * 0.512, 1e-6);
      // b: buf = 0.9 * 2 - 1 = 0.8; b -= 0.1 * 0.8.
      near(b.dataSync()[0], 0.1 - 0.08, 1e-6);
      const state = await opt.exportState();
      assert.deepEqual(state.entries.map((e) => e.name), ['w', 'b']);
      near(state.data[0], 0.634, 1e-6);
      near(state.data[2], 0.8, 1e-6);
      const opt2 = new SgdMomentum([{ name: 'b', variable: b, lrMult: 1, decayMult: 0 }, { name: 'w', variable: w, lrMult: 1, decayMult: 0 }], 0.9, 0);
      opt2.importState(state);
      near((await opt2.exportState()).data[0], 0.8, 1e-6);
      tf.dispose([...g1.values(), ...g2.values()]);
      opt.dispose();
      opt2.dispose();
      w.dispose();
      b.dispose();
    });
  });

  describe('loss', () => {
    it('cross entropy ignoring 255: value by hand, all-void batch gives 0', () => {
      const logits = tf.tensor4d([1, 2, 0, 0.5, -1, 3, 2, 2, 2, 0, 0, 0], [1, 2, 2, 3]);
      const labels = tf.tensor3d([1, 255, 0, 2], [1, 2, 2], 'int32');
      const lse = (z: number[]) => Math.log(z.reduce((a, v) => a + Math.exp(v), 0));
      const expected = ((lse([1, 2, 0]) - 2) + (lse([2, 2, 2]) - 2) + (lse([0, 0, 0]) - 0)) / 3;
      const loss = crossEntropy(logits, labels);
      near(loss.dataSync()[0], expected, 1e-5, 'cross entropy');
      const none = crossEntropy(logits, tf.fill([1, 2, 2], 255, 'int32') as tf.Tensor3D);
      assert.equal(none.dataSync()[0], 0);
      tf.dispose([logits, labels, loss, none]);
    });

    it('gradients of the loss match finite differences: plain, upsampled logits (v3), downsampled labels (v1/v2)', () => {
      const labels = tf.tensor3d(Int32Array.from({ length: 2 * 4 * 5 }, (_, i) => (i % 4 === 3 ? 255 : i % 3)), [2, 4, 5], 'int32');
      const x = randomTensor([2, 4, 5, 3], 31, -2, 2);
      assertGradients((l) => crossEntropy(l as tf.Tensor4D, labels), [x], { label: 'crossEntropy' });
      const lab9 = { data: Uint8Array.from({ length: 2 * 9 * 9 }, (_, i) => (i % 7 === 0 ? 255 : (i * 5) % 3)), n: 2, height: 9, width: 9 };
      const small = randomTensor([2, 3, 3, 3], 32, -2, 2);
      assertGradients((l) => segmentationLoss(l as tf.Tensor4D, lab9, { at: 'logits', alignCorners: true }), [small], { label: 'loss on upsampled logits (corners)' });
      assertGradients((l) => segmentationLoss(l as tf.Tensor4D, lab9, { at: 'logits', alignCorners: false }), [small], { label: 'loss on upsampled logits (half-pixel)' });
      assertGradients((l) => segmentationLoss(l as tf.Tensor4D, lab9, { at: 'labels', alignCorners: true }), [small], { label: 'loss on downsampled labels' });
      tf.dispose([labels, x, small]);
    });

    it('nearest label downsampling aligns corners: a 321 crop\'s 41 logits read pixels 0, 8, ..., 320', () => {
      const H = 321;
      const lab = new Uint8Array(H * H);
      for (let y = 0; y < H; y++) for (let x = 0; x < H; x++) lab[y * H + x] = (y % 8 === 0 && x % 8 === 0) ? 1 : 0;
      const small = resizeLabelsNearest(lab, 1, H, H, 41, 41);
      assert.ok(small.every((v) => v === 1));
      // 2x3 -> 1x2 by hand: row 0, columns 0 and 2.
      assert.deepEqual([...resizeLabelsNearest(Uint8Array.from([1, 2, 3, 4, 5, 6]), 1, 2, 3, 1, 2)], [1, 3]);
      assert.equal(mscSize(321, 0.75), 241);
      assert.equal(mscSize(321, 0.5), 161);
    });

    it('MSC: max fusion and the four-term loss have finite-difference gradients; the loss is the sum of its terms', () => {
      // Values 0.1 apart so no two candidates of a max tie within the step.
      const a = tf.tensor4d(Float32Array.from({ length: 1 * 5 * 5 * 2 }, (_, i) => ((i * 37) % 50) * 0.1 - 2.5), [1, 5, 5, 2]);
      const b = tf.tensor4d(Float32Array.from({ length: 1 * 3 * 3 * 2 }, (_, i) => ((i * 7) % 18) * 0.1 - 0.83), [1, 3, 3, 2]);
      assertGradients((p, q) => maxFusion([p as tf.Tensor4D, q as tf.Tensor4D]), [a, b], { label: 'max fusion', epsilon: 1e-3 });
      const labels = { data: Uint8Array.from({ length: 9 * 9 }, (_, i) => (i % 5 === 0 ? 255 : i % 2)), n: 1, height: 9, width: 9 };
      const input = randomTensor([1, 9, 9, 2], 33);
      // A one-layer "network" with stride 2: logits 5x5 at scale 1, 4x4 at 0.75, 3x3 at 0.5.
      const net = (w: tf.Tensor) => (x: tf.Tensor4D) => tf.conv2d(x, w as tf.Tensor4D, 2, 'same');
      const w = randomTensor([3, 3, 2, 2], 34, -0.5, 0.5);
      const g = { at: 'labels' as const, alignCorners: true };
      assertGradients((k) => mscLoss(net(k), input as tf.Tensor4D, labels, g), [w], { label: 'MSC loss', tolerance: 2e-3 });
      const total = tf.tidy(() => mscLoss(net(w), input as tf.Tensor4D, labels, g).dataSync()[0]);
      const parts = tf.tidy(() => {
        const outs = [1, 0.75, 0.5].map((s) => net(w)(s === 1 ? input as tf.Tensor4D : tf.image.resizeBilinear(input as tf.Tensor4D, [mscSize(9, s), mscSize(9, s)], true)));
        return [...outs, maxFusion(outs)].reduce((acc, l) => acc + segmentationLoss(l, labels, g).dataSync()[0], 0);
      });
      near(total, parts, 1e-5, 'MSC total');
      tf.dispose([a, b, input, w]);
    });
  });

  describe('augmentation and data', () => {
    const img = { width: 4, height: 3, channels: 3 as const, data: Uint8Array.from({ length: 36 }, (_, i) => i * 7) };
    const lab = { width: 4, height: 3, data: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), ignoreIndex: 255 };
    const base: AugmentOptions = { cropHeight: 3, cropWidth: 4, scaleMin: 1, scaleMax: 1, mirror: false, padValue: [10, 20, 30] };

    it('identity at scale 1; padding with the mean colour and 255; mirror; nearest labels when scaled', () => {
      const same = augment(img, lab, { scale: 1, flip: false, offsetX: 0, offsetY: 0 }, base);
      assert.deepEqual([...same.image], [...img.data]);
      assert.deepEqual([...same.label], [...lab.data]);
      const padded = augment(img, lab, { scale: 1, flip: false, offsetX: 0, offsetY: 0 }, { ...base, cropHeight: 4, cropWidth: 5 });
      assert.deepEqual([...padded.label], [0, 1, 2, 3, 255, 4, 5, 6, 7, 255, 8, 9, 10, 11, 255, 255, 255, 255, 255, 255]);
      assert.deepEqual([...padded.image.slice(12, 15)], [10, 20, 30]);
      assert.deepEqual([...padded.image.slice(57, 60)], [10, 20, 30]);
      const flipped = augment(img, lab, { scale: 1, flip: true, offsetX: 0, offsetY: 0 }, base);
      assert.deepEqual([...flipped.label], [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8]);
      assert.deepEqual([...flipped.image.slice(0, 3)], [...img.data.slice(9, 12)]);
      const twice = augment(img, lab, { scale: 2, flip: false, offsetX: 1, offsetY: 2 }, { ...base, cropHeight: 2, cropWidth: 3 });
      // Scaled 8x6: rows 2, 3 come from source row 1; columns 1..3 from source columns 0, 1, 1.
      assert.deepEqual([...twice.label], [4, 5, 5, 4, 5, 5]);
      // Bilinear with half-pixel centres: scaled (2, 1) samples source (0.75, 0.25).
      const at = (x: number, y: number, k: number) => img.data[(y * 4 + x) * 3 + k];
      const expect0 = (at(0, 0, 0) * 0.75 + at(1, 0, 0) * 0.25) * 0.25 + (at(0, 1, 0) * 0.75 + at(1, 1, 0) * 0.25) * 0.75;
      near(twice.image[0], expect0, 1e-4, 'bilinear sample');
      assert.deepEqual(padValueFor('caffe-bgr'), [122.675, 116.669, 104.008]);
      assert.deepEqual(padValueFor('tanh'), [127.5, 127.5, 127.5]);
    });

    it('random draws stay within range and are reproducible from the stream position', () => {
      const o: AugmentOptions = { ...base, cropHeight: 5, cropWidth: 5, scaleMin: 0.5, scaleMax: 1.5, mirror: true };
      const flips = new Set<boolean>();
      for (let k = 0; k < 200; k++) {
        const p = drawAugment(Rng.at(9, 2, k), 40, 30, o);
        assert.deepEqual(p, drawAugment(Rng.at(9, 2, k), 40, 30, o));
        assert.ok(p.scale >= 0.5 && p.scale < 1.5);
        assert.ok(p.offsetX >= 0 && p.offsetX <= Math.max(5, Math.round(40 * p.scale)) - 5);
        assert.ok(p.offsetY >= 0 && p.offsetY <= Math.max(5, Math.round(30 * p.scale)) - 5);
        flips.add(p.flip);
      }
      assert.equal(flips.size, 2);
      assert.notEqual(mix32(1, 2, 3), mix32(1, 2, 4));
    });

    it('synthetic samples: seeded, distinct, labels in range, void borders on request', () => {
      const a = syntheticSample(3, { width: 33, height: 29, classes: 5, seed: 4 });
      const b = syntheticSample(3, { width: 33, height: 29, classes: 5, seed: 4 });
      const c = syntheticSample(4, { width: 33, height: 29, classes: 5, seed: 4 });
      assert.deepEqual(a.image.data, b.image.data);
      assert.deepEqual(a.label.data, b.label.data);
      assert.notDeepEqual(a.image.data, c.image.data);
      assert.equal(a.image.data.length, 33 * 29 * 3);
      const set = syntheticDataset(30, { width: 33, height: 33, classes: 5, seed: 4 });
      const seen = new Set<number>();
      for (const s of set) for (const v of s.label.data) seen.add(v);
      assert.deepEqual([...seen].sort((x, y) => x - y), [0, 1, 2, 3, 4]);
      const v = syntheticSample(0, { width: 33, height: 33, voidBorder: true, seed: 4 });
      assert.ok(v.label.data.includes(255));
      assert.throws(() => syntheticSample(0, { classes: 9 }), /classes/);
    });

    it('every epoch visits every sample once; batches are a function of (seed, sequence)', async () => {
      const order = new SampleOrder(7, 5);
      for (let e = 0; e < 3; e++) {
        const seen = Array.from({ length: 7 }, (_, i) => order.indexAt(e * 7 + i)).sort();
        assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
      }
      const src = await openSource({ kind: 'synthetic', count: 7, options: { width: 20, height: 20, seed: 2 } });
      const recipe = { batchSize: 3, seed: 5, augment: { ...base, cropHeight: 16, cropWidth: 16, scaleMin: 0.7, scaleMax: 1.3, mirror: true } };
      const b1 = await makeBatch(src, new SampleOrder(7, 5), 4, recipe);
      const b2 = await makeBatch(src, new SampleOrder(7, 5), 4, recipe);
      assert.deepEqual(b1.images, b2.images);
      assert.deepEqual(b1.labels, b2.labels);
      assert.deepEqual(b1.ids, b2.ids);
      // The data thread yields exactly the batches of the inline loader.
      const inline = new InlineLoader(src, recipe, 2, 2);
      const threaded = new WorkerLoader({ kind: 'synthetic', count: 7, options: { width: 20, height: 20, seed: 2 } }, recipe, 2, 3);
      try {
        for (let i = 0; i < 5; i++) {
          const [x, y] = await Promise.all([inline.next(), threaded.next()]);
          assert.equal(x.seq, 2 + i);
          assert.equal(y.seq, 2 + i);
          assert.deepEqual(x.images, y.images);
          assert.deepEqual(x.labels, y.labels);
        }
      } finally {
        await inline.close();
        await threaded.close();
      }
    });

    it('a bad data set reaches the trainer as an error, not a hang', async () => {
      const loader = new WorkerLoader({ kind: 'folder', root: os.tmpdir(), dir: 'no-such-folder-deeplab' }, { batchSize: 1, seed: 1, augment: base }, 0, 1);
      await assert.rejects(loader.next(), /does not exist/);
      await loader.close();
      // A mask with a class the network lacks is named, not silently trained as nothing.
      const bad = { ...lab, data: Uint8Array.from([0, 1, 2, 5, 0, 1, 2, 0, 255, 0, 0, 0]) };
      const src = await openSource({ kind: 'memory', samples: [{ id: 'odd', image: img, label: bad }] });
      await assert.rejects(makeBatch(src, new SampleOrder(1, 1), 0, { batchSize: 1, seed: 1, augment: base, classes: 3 }),
        /the mask of odd holds class 5 at pixel \(3, 0\), but the model has 3 classes/);
    });

    it('dropout masks follow the seeds in the forward context, one per layer', () => {
      const x = tf.ones([1, 8, 8, 4]) as tf.Tensor4D;
      const masks = (seed: number) => {
        const r = new Rng(seed);
        const ctx = { training: true, freezeBN: true, dropoutSeed: () => Math.floor(r.next() * 2 ** 32) };
        return [dropout(x, 0.5, ctx), dropout(x, 0.5, ctx)].map((t) => {
          const v = [...t.dataSync()];
          t.dispose();
          return v;
        });
      };
      const [a1, a2] = masks(7);
      const [b1, b2] = masks(7);
      assert.deepEqual(a1, b1);
      assert.deepEqual(a2, b2);
      assert.notDeepEqual(a1, a2, 'each dropout layer draws its own mask');
      assert.notDeepEqual(masks(8)[0], a1);
      x.dispose();
    });
  });

  describe('checkpoints', () => {
    const spec = { variant: 'v3plus' as const, backbone: 'mobilenetv2' as const, classes: 3, width: 0.0625 };
    const stateFor = (iteration: number) => ({
      iteration,
      config: normalizeTrainConfig({ model: { spec }, train: { kind: 'synthetic', count: 2 } }),
      rng: { scheme: 'counter' as const, seed: 1, samplesSeen: iteration * 4 },
      metrics: { evals: [] },
      elapsedMs: iteration,
    });

    it('round-trip, latest pointer, keep the newest K, leftovers of an interrupted write ignored and removed', async () => {
      const root = tmpDir();
      const model = new DeepLab(spec);
      try {
        const saved = await serialize(model, 'tanh');
        const optimizer = { entries: [{ name: 'a', shape: [2], offset: 0 }], data: Float32Array.from([1.5, -2]) };
        for (const it of [10, 20, 30, 40]) {
          const data = { ...saved, data: saved.data.map((v) => v + it) };
          await writeCheckpoint(root, { saved: data, optimizer, state: stateFor(it) }, 2);
        }
        assert.deepEqual(listCheckpoints(root).map((c) => c.iteration), [30, 40]);
        const latest = findLatestCheckpoint(root)!;
        assert.equal(latest.state.iteration, 40);
        assert.equal(latest.dir, path.join(root, checkpointName(40)));
        near(latest.saved.data[0], saved.data[0] + 40, 1e-4);
        assert.deepEqual([...latest.optimizer.data], [1.5, -2]);
        assert.equal(latest.state.config.model.spec.width, 0.0625);
        // A write killed half-way leaves a temporary folder: never read, removed by the next write.
        fs.mkdirSync(path.join(root, '.tmp-ckpt-50-1-1'));
        fs.writeFileSync(path.join(root, '.tmp-ckpt-50-1-1', 'weights.bin'), 'partial');
        assert.equal(findLatestCheckpoint(root)!.state.iteration, 40);
        // A broken newest checkpoint and pointer: the scan falls back to the newest whole one.
        fs.rmSync(path.join(root, checkpointName(40), 'optimizer.bin'));
        assert.throws(() => readCheckpoint(path.join(root, checkpointName(40))));
        assert.equal(findLatestCheckpoint(root)!.state.iteration, 30);
        fs.writeFileSync(path.join(root, LATEST_FILE), '{broken');
        assert.equal(findLatestCheckpoint(root)!.state.iteration, 30);
        await writeCheckpoint(root, { saved, optimizer, state: stateFor(50) }, 2);
        assert.ok(!fs.readdirSync(root).some((n) => n.startsWith('.tmp-')));
        clearCheckpoints(root);
        assert.equal(findLatestCheckpoint(root), undefined);
      } finally {
        model.dispose();
        fs.rmSync(root, { recursive: true, force: true });
      }
    });

    it('a trainer checkpoint is a loadable model; resume refuses another network', async () => {
      const root = tmpDir();
      try {
        const cfg = normalizeTrainConfig({
          model: { spec }, train: { kind: 'synthetic', count: 4, options: { width: 17, height: 17, classes: 3 } },
          cropSize: 17, batchSize: 2, iterSize: 1, maxIter: 3, lr: 0.01, checkpointDir: root, dataWorker: false,
        });
        const t = await Trainer.create(cfg);
        await t.step();
        const info = await t.checkpoint();
        t.dispose();
        assert.ok(info.publishedDir && fs.existsSync(path.join(info.publishedDir, 'deeplab.json')));
        const ck = readCheckpoint(info.dir);
        assert.equal(ck.state.iteration, 1);
        assert.equal(ck.saved.manifest.meta?.iteration, 1);
        const other = normalizeTrainConfig({ ...cfg, model: { spec: { ...spec, classes: 4 } } });
        await assert.rejects(Trainer.create(other), /different network/);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });

    it('resuming a finished run trains nothing but publishes its weights again', async () => {
      const root = tmpDir();
      try {
        const cfg = normalizeTrainConfig({
          model: { spec }, train: { kind: 'synthetic', count: 4, options: { width: 17, height: 17, classes: 3 } },
          cropSize: 17, batchSize: 2, iterSize: 1, maxIter: 2, lr: 0.01, checkpointDir: root, dataWorker: false,
        });
        const first = await Trainer.create(cfg);
        const done: CheckpointInfo[] = [];
        assert.equal(await first.run({ stopRequested: false }, { onCheckpoint: async (c) => void done.push(c) }), 'finished');
        first.dispose();
        fs.rmSync(path.join(root, 'published'), { recursive: true, force: true });
        const again = await Trainer.create(cfg);
        const events: CheckpointInfo[] = [];
        let steps = 0;
        assert.equal(await again.run({ stopRequested: false }, { onCheckpoint: async (c) => void events.push(c), onProgress: () => steps++ }), 'finished');
        again.dispose();
        assert.equal(steps, 0);
        assert.equal(events.length, 1);
        assert.equal(events[0].iteration, 2);
        assert.ok(events[0].publishedDir && fs.existsSync(path.join(events[0].publishedDir, 'deeplab.json')));
        // The republished weights are the finished run's.
        const a = readCheckpoint(done[done.length - 1].dir).saved.data;
        const b = readSavedDir(events[0].publishedDir!).data;
        assert.deepEqual(Buffer.from(b.buffer, b.byteOffset, b.byteLength), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  });

  describe('train node settings', () => {
    it('blank settings: the synthetic demo, or the recipe for folders; overrides; clear errors', () => {
      const ctx = { userDir: '/home/u/.node-red', nodeId: 'abc.1' };
      const demo = trainSetupFromProps({}, ctx);
      const c = demo.config;
      assert.equal(c.train.kind, 'synthetic');
      assert.equal(c.val?.kind, 'synthetic');
      assert.deepEqual([c.model.spec.variant, c.model.spec.backbone, c.model.spec.width, c.model.spec.classes], ['v3plus', 'mobilenetv2', 0.125, 4]);
      assert.deepEqual(c.model.classNames, ['background', 'disc', 'square', 'triangle']);
      assert.deepEqual([c.cropSize, c.batchSize, c.iterSize, c.maxIter, c.lr], [97, 8, 1, 300, 0.02]);
      assert.equal(c.checkpointDir, path.join('/home/u/.node-red', 'deeplab-training', 'abc.1'));
      assert.equal(demo.resume, 'auto');
      assert.equal(demo.crfAfter, undefined);
      const folder = trainSetupFromProps({ source: 'folder', dir: 'VOC', layout: 'voc', learnCrf: true, crfImages: '3' }, ctx, { maxIter: 50, lr: 0.001 });
      const f = folder.config;
      assert.deepEqual(f.train, { kind: 'folder', root: '/home/u/.node-red', dir: 'VOC', list: { layout: 'voc', imagesDir: undefined, masksDir: undefined, split: 'train' }, limit: 0 });
      assert.equal(f.val?.kind === 'folder' && f.val.list?.split, 'val');
      assert.deepEqual([f.cropSize, f.scaleMin, f.scaleMax, f.batchSize, f.iterSize, f.maxIter, f.lr, f.weightDecay], [321, 0.5, 1.5, 2, 5, 50, 0.001, 5e-4]);
      // One recipe: a run configured in code gets the train node's defaults.
      const code = normalizeTrainConfig({ train: f.train });
      assert.deepEqual([code.cropSize, code.scaleMin, code.scaleMax, code.batchSize, code.iterSize, code.weightDecay], [321, 0.5, 1.5, 2, 5, 5e-4]);
      assert.deepEqual(folder.crfAfter, { images: 3 });
      assert.equal(f.msc, false);
      const v2 = normalizeModelConfig({ spec: { variant: 'v2', classes: 4, width: 0.0625 } });
      assert.equal(trainSetupFromProps({}, { ...ctx, model: v2 }).config.msc, true);
      assert.equal(trainSetupFromProps({ msc: 'false' }, { ...ctx, model: v2 }).config.msc, false);
      assert.throws(() => trainSetupFromProps({}, ctx, { speed: 2 }), /unknown option "speed"/);
      assert.throws(() => trainSetupFromProps({ lr: 'fast' }, ctx), /learning rate must be a number/);
      assert.throws(() => trainSetupFromProps({ source: 'folder' }, ctx), /set the data set folder/);
      assert.throws(() => trainSetupFromProps({}, { ...ctx, model: normalizeModelConfig({ spec: { classes: 21 } }) }), /model has 21 classes/);
      assert.throws(() => trainSetupFromProps({ batchSize: 0 }, ctx), /batch size must be a whole number at least 1, got 0/);
    });
  });

  describe('CRF grid search', () => {
    it('covers the papers\' grid; keeps the best trial, whose mIoU recomputes; beats the blocky network maps on shapes', async () => {
      assert.deepEqual(PAPER_CRF_GRID.w1, [3, 4, 5, 6]);
      assert.deepEqual(PAPER_CRF_GRID.thetaAlpha, [30, 40, 50, 60, 70, 80, 90, 100]);
      assert.deepEqual(PAPER_CRF_GRID.thetaBeta, [3, 4, 5, 6]);
      const cases = [0, 1].map((i) => {
        const s = syntheticSample(i, { width: 48, height: 48, classes: 3, seed: 8 });
        return { image: s.image, label: s.label, scores: syntheticScores(s.label, 3, { seed: i + 1, stride: 8, cellNoise: 1, pixelNoise: 0.5 }) };
      });
      const grid = { w1: [3, 6], thetaAlpha: [30, 80], thetaBeta: [3, 6], iterations: 5 };
      const seen: number[] = [];
      const r = await crfGridSearch(cases, { grid, rule: 'present', threads: 1, onTrial: (done) => { seen.push(done); } });
      assert.equal(r.trials.length, 8);
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
      const top = Math.max(...r.trials.map((t) => t.meanIoU ?? -1));
      assert.equal(r.bestMeanIoU, top);
      assert.equal(r.trials.find((t) => t.meanIoU === top)!.params, r.best);
      const cm = new ConfusionMatrix(3);
      for (const c of cases) cm.add(argmaxScoreMap(denseCrf(c.scores, c.image, r.best, { threads: 1 }).probs, 255), c.label);
      near(cm.report([], 'present').meanIoU!, r.bestMeanIoU!, 1e-12, 'recomputed mIoU');
      assert.ok(r.bestMeanIoU! > r.baselineMeanIoU!, `CRF ${r.bestMeanIoU} vs network ${r.baselineMeanIoU}`);
      assert.deepEqual(Object.keys(r.best).sort(), ['iterations', 'thetaAlpha', 'thetaBeta', 'thetaGamma', 'w1', 'w2']);
      await assert.rejects(crfGridSearch(cases, { grid: { w1: [] } }), /w1 needs at least one value/);
      await assert.rejects(crfGridSearch(cases, { grid: { thetaBeta: [-1] } }), /thetaBeta/);
    });
  });

  describe('trainer steps', () => {
    const spec = { variant: 'v3plus' as const, backbone: 'mobilenetv2' as const, classes: 3, width: 0.0625 };
    const data = { kind: 'synthetic' as const, count: 8, options: { width: 17, height: 17, classes: 3, seed: 3 } };

    it('gradient accumulation: batch 2 x iter size 2 equals batch 4 x 1 (frozen BN, no void pixels); no tensor leak', async () => {
      const common = { model: { spec }, train: data, cropSize: 17, scaleMin: 1, scaleMax: 1, mirror: false, maxIter: 10, lr: 0.05, freezeBN: true, dataWorker: false };
      const a = await Trainer.create(normalizeTrainConfig({ ...common, batchSize: 4, iterSize: 1 }));
      const b = await Trainer.create(normalizeTrainConfig({ ...common, batchSize: 2, iterSize: 2 }));
      try {
        await a.step();
        await b.step();
        const before = tf.memory().numTensors;
        const ra = await a.step();
        const rb = await b.step();
        assert.equal(tf.memory().numTensors, before, 'tensors leaked by a step');
        near(ra.loss, rb.loss, 1e-5, 'loss');
        for (const [name, v] of a.model.store.trainable) {
          const x = v.dataSync();
          const y = b.model.store.trainable.get(name)!.dataSync();
          for (let i = 0; i < x.length; i++) near(x[i], y[i], 1e-5 * Math.max(1, Math.abs(x[i])), name);
        }
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  });
});
