/**
 * Training end to end on wasm with small networks: the synthetic set is learnt to a held-out
 * mIoU >= 0.8, an interrupted and resumed run equals an uninterrupted one, and real VOC
 * photographs flow through the whole path (files, decoding, augmentation, training) with
 * their training mIoU rising well above the start.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { LabelMap } from '../../lib/contract';
import { decodeImage, resizeImage } from '../../lib/data/image';
import { decodeLabelImage } from '../../lib/data/labels';
import { ModelSpec } from '../../lib/models/deeplab';
import { normalizeTrainConfig, TrainConfigInput } from '../../lib/training/config';
import { openSource } from '../../lib/training/data';
import { evaluate } from '../../lib/training/evaluate';
import { resizeLabelsNearest } from '../../lib/training/loss';
import { Trainer } from '../../lib/training/trainer';
import { SHARED_DATA as SHARED, sharedData } from '../helpers/shared-data';
import { tfReady } from '../helpers/tf-setup';

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-run-'));

function weightsOf(t: Trainer): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of t.model.store.all()) out.set(name, v.dataSync() as Float32Array);
  return out;
}

describe('lib/training: training runs', () => {
  before(async () => {
    await tfReady();
  });

  it('a small DeepLab v3+ learns the synthetic shapes: held-out mIoU >= 0.8', async () => {
    // 3 classes (background, disc, square) at 49 px; the validation images are never trained on.
    const options = { width: 49, height: 49, classes: 3, seed: 11 };
    const cfg = normalizeTrainConfig({
      model: { spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 3, width: 0.125, seed: 2 } },
      train: { kind: 'synthetic', count: 96, options },
      val: { kind: 'synthetic', count: 24, first: 100_000, options },
      cropSize: 49, scaleMin: 0.8, scaleMax: 1.2, mirror: true,
      batchSize: 8, iterSize: 1, maxIter: 90, lr: 0.02, weightDecay: 1e-4, seed: 5,
      evalEvery: 0, progressEvery: 10,
    });
    const t = await Trainer.create(cfg);
    const losses: number[] = [];
    let final: number | null = null;
    let waits = 0;
    try {
      const before = await t.evaluate();
      const r = await t.run({ stopRequested: false }, {
        onProgress: (p) => {
          losses.push(p.loss);
          if (p.iteration > 10) waits += p.dataWaitMs;
        },
        onEval: (e) => (final = e.report.meanIoU),
      });
      assert.equal(r, 'finished');
      assert.ok(before.report.meanIoU !== null && before.report.meanIoU < 0.5, `untrained mIoU ${before.report.meanIoU}`);
      console.log(`      held-out mIoU ${final}`);
      assert.ok(final !== null && final >= 0.8, `held-out mIoU ${final} after ${t.iteration} iterations (losses ${losses.map((l) => l.toFixed(2)).join(' ')})`);
      assert.ok(losses[losses.length - 1] < losses[0] / 2, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
      // The data thread keeps ahead: steps hardly wait (informative; timing is not asserted).
      if (waits > 1000) console.log(`      note: steps waited ${waits.toFixed(0)} ms for data in total`);
    } finally {
      t.dispose();
    }
  });

  async function straightVersusResumed(spec: Partial<ModelSpec>, extra: Partial<TrainConfigInput>, n: number): Promise<void> {
    const dirA = tmpDir();
    const dirB = tmpDir();
    const options = { width: 33, height: 33, classes: 3, seed: 4, voidBorder: true };
    const base = (dir: string) => normalizeTrainConfig({
      model: { spec: { classes: 3, width: 0.0625, blocks: [1, 1, 1, 1], ...spec } },
      train: { kind: 'synthetic', count: 10, options },
      cropSize: 29, scaleMin: 0.7, scaleMax: 1.3, batchSize: 2, iterSize: 2, maxIter: 2 * n, lr: 0.01, seed: 9,
      checkpointDir: dir, checkpointEvery: 0, evalEvery: 0, progressEvery: 1, dataWorker: false, ...extra,
    });
    try {
      const a = await Trainer.create(base(dirA));
      const lossA: number[] = [];
      await a.run({ stopRequested: false }, { onProgress: (p) => lossA.push(p.loss) });
      const wa = weightsOf(a);
      a.dispose();

      const b1 = await Trainer.create(base(dirB));
      const lossB: number[] = [];
      const control = { stopRequested: false };
      await b1.run(control, {
        onProgress: (p) => {
          lossB.push(p.loss);
          if (p.iteration === n) control.stopRequested = true;
        },
      });
      assert.equal(b1.iteration, n);
      b1.dispose();
      // A fresh trainer (as after a process restart) picks up the stop checkpoint.
      const b2 = await Trainer.create(base(dirB));
      assert.equal(b2.iteration, n);
      assert.ok(b2.resumedFrom?.endsWith(`ckpt-${String(n).padStart(8, '0')}`));
      await b2.run({ stopRequested: false }, { onProgress: (p) => lossB.push(p.loss) });
      const wb = weightsOf(b2);
      b2.dispose();

      assert.equal(lossB.length, lossA.length);
      lossA.forEach((l, i) => assert.ok(Math.abs(l - lossB[i]) <= 1e-5 * Math.max(1, l), `loss at iteration ${i + 1}: ${l} vs ${lossB[i]}`));
      for (const [name, x] of wa) {
        const y = wb.get(name)!;
        for (let i = 0; i < x.length; i++) {
          assert.ok(Math.abs(x[i] - y[i]) <= 1e-5 * Math.max(1, Math.abs(x[i])), `${name}[${i}]: ${x[i]} vs ${y[i]}`);
        }
      }
    } finally {
      fs.rmSync(dirA, { recursive: true, force: true });
      fs.rmSync(dirB, { recursive: true, force: true });
    }
  }

  it('2N iterations straight equal N + resume + N: v3 torchvision (BN statistics, dropout, aux loss, momentum)', async () => {
    await straightVersusResumed({ variant: 'v3', layout: 'torchvision', aux: true, backbone: 'resnet50' }, {}, 2);
  });

  it('2N iterations straight equal N + resume + N: Adam (both moments and the step count), warm-up, class weights', async () => {
    await straightVersusResumed({ variant: 'v3', layout: 'torchvision', aux: true, backbone: 'resnet50' }, { optimizer: 'adam', lr: 0.003, warmupIter: 3, classWeights: 'sqrt-inverse' }, 2);
  });

  it('2N iterations straight equal N + resume + N: v2 with multi-scale (MSC) training, data thread', async () => {
    await straightVersusResumed({ variant: 'v2', backbone: 'resnet50' }, { msc: true, dataWorker: true, iterSize: 1 }, 1);
  });

  it('four real VOC photographs flow through files, decoding, augmentation and training: training mIoU rises well above the start', async () => {
    const voc = sharedData('voc-samples');
    const scale = 0.125;
    const train = { kind: 'folder' as const, root: SHARED, dir: 'voc-samples', list: { split: 'val' }, limit: 4 };
    // The same four images at the training scale, for measuring the training mIoU.
    const src = await openSource(train);
    const samples: { id: string; image: Awaited<ReturnType<typeof decodeImage>>; label: LabelMap }[] = [];
    for (let i = 0; i < src.count; i++) {
      const s = await src.get(i);
      const w = Math.round(s.image.width * scale);
      const h = Math.round(s.image.height * scale);
      const label = { width: w, height: h, ignoreIndex: 255, data: resizeLabelsNearest(s.label.data, 1, s.label.height, s.label.width, h, w) };
      samples.push({ id: s.id, image: await resizeImage(s.image, w, h), label });
    }
    // Masks decode by palette index (sharp alone would give colours).
    const direct = await decodeLabelImage(fs.readFileSync(path.join(voc, 'SegmentationClass', `${samples[0].id}.png`)));
    assert.deepEqual(direct.data, (await src.get(0)).label.data);
    const cfg = normalizeTrainConfig({
      model: { spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 21, width: 0.125, seed: 3 }, classNames: undefined },
      train,
      val: { kind: 'memory', samples },
      cropSize: 65, scaleMin: scale * 0.9, scaleMax: scale * 1.1, mirror: true,
      batchSize: 4, iterSize: 1, maxIter: 200, lr: 0.02, weightDecay: 1e-4, seed: 2,
      evalEvery: 0, evalRule: 'present', progressEvery: 50,
    });
    const t = await Trainer.create(cfg);
    try {
      const start = (await t.evaluate()).report.meanIoU!;
      let end = start;
      await t.run({ stopRequested: false }, { onEval: (e) => (end = e.report.meanIoU!) });
      const again = await evaluate(t.model, cfg.model.preprocessing, await openSource(cfg.val!), { rule: 'present' });
      assert.equal(again.meanIoU, end);
      console.log(`      training mIoU ${start.toFixed(3)} -> ${end.toFixed(3)}`);
      assert.ok(end >= start + 0.25 && end >= 0.5, `training mIoU ${start.toFixed(3)} -> ${end.toFixed(3)}`);
    } finally {
      t.dispose();
    }
    assert.ok(tf.memory().numTensors < 10_000);
  });
});
