/**
 * Published-layout checkpoints, written by the real PyTorch (test/fixtures/torch/make_layout_fixtures.py,
 * run with Debian's python3-torch), imported and run through our networks: the logits must equal
 * torch's on a real VOC photograph, for both of torch's file formats.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { DeepLab } from '../../lib/models/deeplab';
import { INFERENCE } from '../../lib/models/layers';
import { assignWeights } from '../../lib/weights/format';
import { importStateDict } from '../../lib/weights/import';
import { importCheckpoint } from '../../lib/weights/import-file';
import { readWeights } from '../../lib/weights/load';
import { SourceTensors } from '../../lib/weights/layouts/layout';
import { normalizeTrainConfig } from '../../lib/training/config';
import { Trainer } from '../../lib/training/trainer';
import { vocSample } from '../helpers/shared-data';
import { tfReady } from '../helpers/tf-setup';
import { runTorchPython } from '../helpers/torch-python';

const OUT = path.resolve(__dirname, '../../../test-output/torch-layouts');
const SCRIPT = path.resolve(__dirname, '../../../test/fixtures/torch/make_layout_fixtures.py');

interface Case {
  name: string;
  layout: string;
  variant: string;
}

const CASES: Case[] = [
  { name: 'torchvision-v3-r50', layout: 'torchvision', variant: 'v3' },
  { name: 'torchvision-v3-small', layout: 'torchvision', variant: 'v3' },
  { name: 'kazuto-v2-msc', layout: 'kazuto1011', variant: 'v2' },
  { name: 'deeplab-resnet-v2', layout: 'deeplab-resnet', variant: 'v2' },
  { name: 'jfzhang95-v3plus-r101', layout: 'jfzhang95', variant: 'v3plus' },
  { name: 'jfzhang95-v3plus-mobilenet', layout: 'jfzhang95', variant: 'v3plus' },
  { name: 'vgg-largefov', layout: 'vgg-largefov', variant: 'v1' },
];

function f32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

interface Parity {
  maxAbs: number;
  range: number;
  argmax: number;
}

function compare(ours: Float32Array, ref: Float32Array, classes: number): Parity {
  assert.equal(ours.length, ref.length, 'output sizes differ');
  let maxAbs = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ref.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(ours[i] - ref[i]));
    lo = Math.min(lo, ref[i]);
    hi = Math.max(hi, ref[i]);
  }
  let agree = 0;
  const pixels = ref.length / classes;
  for (let p = 0; p < pixels; p++) {
    let a = 0;
    let b = 0;
    for (let k = 1; k < classes; k++) {
      if (ours[p * classes + k] > ours[p * classes + a]) a = k;
      if (ref[p * classes + k] > ref[p * classes + b]) b = k;
    }
    if (a === b) agree++;
  }
  return { maxAbs, range: hi - lo, argmax: agree / pixels };
}

function run(model: DeepLab, name: string, low = false): Float32Array {
  const meta = JSON.parse(fs.readFileSync(path.join(OUT, `${name}.json`), 'utf8')) as { input: number[] };
  const x = tf.tensor4d(f32(path.join(OUT, `${name}.input.f32`)), meta.input as [number, number, number, number]);
  try {
    return tf.tidy(() => {
      if (!low) return model.forward(x).logits.dataSync() as Float32Array;
      const backbone = (model as unknown as { backbone: { apply(x: tf.Tensor4D, c: typeof INFERENCE): { low: tf.Tensor4D } } }).backbone;
      return backbone.apply(x, INFERENCE).low.dataSync() as Float32Array;
    });
  } finally {
    x.dispose();
  }
}

describe('lib/weights: importing published layouts (parity with PyTorch)', () => {
  const table: string[] = [];
  before(async function () {
    this.timeout(600_000);
    await tfReady();
    runTorchPython(SCRIPT, [vocSample('vainf_582'), OUT]);
  });
  after(() => {
    if (table.length) console.log(`      layout                      format  max abs    / range     argmax\n${table.map((r) => `      ${r}`).join('\n')}`);
  });

  for (const c of CASES) {
    for (const format of ['zip', 'legacy']) {
      it(`${c.name} (${format} container): logits equal torch's`, async () => {
        const imported = await importCheckpoint(path.join(OUT, `${c.name}.${format}.pth`));
        assert.equal(imported.layout, c.layout);
        const spec = imported.saved.manifest.spec;
        assert.equal(spec.variant, c.variant);
        const model = new DeepLab(spec);
        try {
          assignWeights(model, imported.saved);
          const ref = f32(path.join(OUT, `${c.name}.logits.f32`));
          const p = compare(run(model, c.name), ref, spec.classes);
          table.push(`${c.name.padEnd(28)}${format.padEnd(8)}${p.maxAbs.toExponential(2)}  ${(p.maxAbs / p.range).toExponential(2)}  ${(100 * p.argmax).toFixed(2)} %`);
          assert.ok(p.maxAbs <= 1e-4 * p.range, `max abs ${p.maxAbs} exceeds 1e-4 of the logits' range ${p.range}`);
          assert.ok(p.argmax >= 0.999, `argmax agreement ${p.argmax}`);
        } finally {
          model.dispose();
        }
      });
    }
  }

  it('an ImageNet backbone (torchvision mobilenet_v2) initialises our backbone; inference from it alone is refused', async () => {
    const name = 'torchvision-mobilenet-v2-imagenet';
    const saved = await readWeights({ source: 'checkpoint', path: path.join(OUT, `${name}.zip.pth`) });
    assert.ok(saved);
    assert.equal(saved.manifest.meta?.partial, 'backbone');
    const model = new DeepLab(saved.manifest.spec);
    try {
      assert.throws(() => assignWeights(model, saved), /only an ImageNet backbone/);
      const { loaded, skipped } = assignWeights(model, saved, { partial: true });
      assert.equal(loaded, saved.manifest.weights.length, 'every backbone tensor found its place');
      assert.ok(skipped.length > 0 && skipped.every((n) => n.startsWith('head.')), `only the head is left: ${skipped.filter((n) => !n.startsWith('head.')).slice(0, 3)}`);
      const p = compare(run(model, name, true), f32(path.join(OUT, `${name}.logits.f32`)), 24);
      assert.ok(p.maxAbs <= 1e-4 * p.range, `stride-4 features: max abs ${p.maxAbs}, range ${p.range}`);
    } finally {
      model.dispose();
    }
  });

  it('fine-tunes from a 21-class torchvision checkpoint to 4 classes: backbone and ASPP loaded, classifiers re-initialised, loss falls', async () => {
    const file = path.join(OUT, 'torchvision-v3-small.legacy.pth');
    const imported = await importCheckpoint(file);
    // Output stride 16 for a cheaper training step (the weights are the same at either stride).
    const spec = { ...imported.saved.manifest.spec, classes: 4, outputStride: 16 as const };
    assert.equal(spec.aux, true);
    // The fixture's BN statistics are random, not learnt from images: BN trains here (a real checkpoint would keep it frozen).
    const config = normalizeTrainConfig({
      model: { spec, preprocessing: 'imagenet' },
      init: { source: 'checkpoint', path: file },
      train: { kind: 'synthetic', count: 16, options: { width: 49, height: 49, classes: 4, seed: 3 } },
      cropSize: 49, batchSize: 4, iterSize: 1, maxIter: 30, lr: 0.02, freezeBN: false, evalEvery: 0, checkpointEvery: 0, dataWorker: false,
    });
    const trainer = await Trainer.create(config);
    try {
      // The two 21-class classifiers (head and aux) are re-initialised, and the log says so.
      assert.ok(trainer.notes.some((n) => /4 parameter\(s\) left at their initialisation \(head\.classifier\.weight, head\.classifier\.bias, aux\.classifier\.weight, \.\.\.\)/.test(n)), trainer.notes.join('; '));
      // Everything else holds the checkpoint's values.
      const byName = new Map(imported.saved.manifest.weights.map((w) => [w.name, w]));
      const w = byName.get('head.conv.conv.weight')!;
      const v = trainer.model.store.trainable.get('head.conv.conv.weight')!;
      assert.deepEqual([...(v.dataSync() as Float32Array).subarray(0, 8)], [...imported.saved.data.subarray(w.offset, w.offset + 8)]);
      const losses: number[] = [];
      for (let i = 0; i < 30; i++) losses.push((await trainer.step()).loss);
      const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
      assert.ok(mean(losses.slice(-5)) < 0.8 * mean(losses.slice(0, 5)), `loss ${mean(losses.slice(0, 5))} -> ${mean(losses.slice(-5))}`);
    } finally {
      trainer.dispose();
    }
  });

  it('names the first key that does not fit a forced layout, and a tensor of the wrong shape', async () => {
    await assert.rejects(importCheckpoint(path.join(OUT, 'kazuto-v2-msc.zip.pth'), { layout: 'torchvision' }),
      /"base\.layer1\.conv1\.conv\.weight" is not a parameter of the torchvision layout/);
    const imported = await importCheckpoint(path.join(OUT, 'vgg-largefov.zip.pth'));
    const tensors: SourceTensors = new Map();
    // fc8 with 5 outputs where the rest of the checkpoint says 21 classes: caught when the weights are assigned.
    tensors.set('features.0.weight', { shape: [16, 3, 3, 3], data: new Float32Array(16 * 27) });
    tensors.set('fc6.weight', { shape: [256, 128, 3, 3], data: new Float32Array(256 * 128 * 9) });
    tensors.set('fc8.weight', { shape: [5, 256, 1, 1], data: new Float32Array(5 * 256) });
    const odd = importStateDict(tensors, { layout: 'vgg-largefov' });
    assert.equal(odd.saved.manifest.spec.classes, 5);
    const model = new DeepLab({ ...imported.saved.manifest.spec, classes: 5 });
    try {
      assert.throws(() => assignWeights(model, odd.saved), /saved weights lack/);
      const wrong = { ...imported.saved, manifest: { ...imported.saved.manifest, weights: imported.saved.manifest.weights.map((w) => (w.name === 'head.fc7.weight' ? { ...w, shape: [1, 1, 128, 512] } : w)) } };
      assert.throws(() => assignWeights(model, wrong), /weight head\.fc7\.weight: saved shape \[1,1,128,512\] does not match/);
    } finally {
      model.dispose();
    }
  });
});
