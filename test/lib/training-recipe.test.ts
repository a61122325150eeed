/**
 * The small-data recipe's parts against hand-computed references: Adam with decoupled weight
 * decay (as PyTorch's AdamW), the warm-up, class-weighted cross entropy and its weights, the
 * "hard-shapes" synthetic set (shape, not colour, tells the class), and the train node's presets
 * (the published recipes kept, ImageNet fine-tuning by default for them).
 */
import { strict as assert } from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { syntheticSample, syntheticSet, SYNTHETIC_SETS } from '../../lib/data/synthetic';
import { normalizeModelConfig } from '../../lib/models/config';
import { normalizeTrainConfig } from '../../lib/training/config';
import { crossEntropy, sqrtInverseFrequencyWeights } from '../../lib/training/loss';
import { Adam, polyLr } from '../../lib/training/optimizer';
import { Trainer } from '../../lib/training/trainer';
import { imagenetBackboneFor, SMALL_DATA } from '../../lib/training/presets';
import { trainSetupFromProps } from '../../nodes/train/train-props';
import { tfReady } from '../helpers/tf-setup';

const near = (a: number, b: number, tol = 1e-6, what = '') => assert.ok(Math.abs(a - b) <= tol, `${what} ${a} != ${b} (tolerance ${tol})`);

describe('lib/training: the small-data recipe', () => {
  before(async () => {
    await tfReady();
  });

  it('linear warm-up under the poly schedule', () => {
    near(polyLr(0.01, 0, 100, 0.9, 10), 0.001, 1e-15);
    near(polyLr(0.01, 4, 100, 0.9, 10), 0.01 * 0.5 * Math.pow(0.96, 0.9), 1e-15);
    near(polyLr(0.01, 10, 100, 0.9, 10), 0.01 * Math.pow(0.9, 0.9), 1e-15);
    assert.equal(polyLr(0.01, 3, 100, 0.9, 0), polyLr(0.01, 3, 100, 0.9));
  });

  it('Adam with bias correction and decoupled weight decay matches AdamW by hand; state round-trips', async () => {
    const w = tf.variable(tf.tensor1d([1, -2]), true);
    const opt = new Adam([{ name: 'w', variable: w, lrMult: 10, decayMult: 1 }], 0.1);
    // A plain-number AdamW (PyTorch's order: p *= 1 - lr wd, then p -= lr / c1 * m / (sqrt(v / c2) + eps)).
    const ref = [1, -2];
    const m = [0, 0];
    const v = [0, 0];
    const grads = [[0.5, 1], [-0.2, 3], [0, -1]];
    const lrs = [0.01, 0.005, 0.002];
    for (let t = 1; t <= 3; t++) {
      const g = grads[t - 1];
      const lr = lrs[t - 1] * 10;
      for (let i = 0; i < 2; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
        ref[i] *= 1 - lr * 0.1;
        ref[i] -= (lr / (1 - 0.9 ** t)) * m[i] / (Math.sqrt(v[i] / (1 - 0.999 ** t)) + 1e-8);
      }
      const gt = new Map<string, tf.Tensor>([['w', tf.tensor1d(g)]]);
      opt.apply(gt, lrs[t - 1], t);
      tf.dispose([...gt.values()]);
      const got = w.dataSync();
      near(got[0], ref[0], 1e-6, `step ${t} w[0]`);
      near(got[1], ref[1], 1e-6, `step ${t} w[1]`);
    }
    const state = await opt.exportState();
    assert.deepEqual(state.entries.map((e) => e.name), ['w', 'w#v']);
    near(state.data[0], m[0], 1e-7);
    near(state.data[3], v[1], 1e-7);
    const opt2 = new Adam([{ name: 'w', variable: w, lrMult: 1, decayMult: 0 }], 0);
    opt2.importState(state);
    assert.deepEqual(Array.from((await opt2.exportState()).data), Array.from(state.data));
    opt.dispose();
    opt2.dispose();
    w.dispose();
  });

  it('class weights: 1/sqrt(frequency) at mean pixel weight 1; weighted cross entropy by hand', () => {
    const w = sqrtInverseFrequencyWeights([81, 9, 9, 1]);
    // Raw 1/sqrt(f): f = [0.81, 0.09, 0.09, 0.01] -> [1/0.9, 1/0.3, 1/0.3, 10]; mean over pixels = (90 + 30 + 30 + 10) / 100 = 1.6.
    [1 / 0.9 / 1.6, 1 / 0.3 / 1.6, 1 / 0.3 / 1.6, 10 / 1.6].forEach((x, i) => near(w[i], x, 1e-12, `weight ${i}`));
    near([81, 9, 9, 1].reduce((a, n, c) => a + n * w[c], 0) / 100, 1, 1e-12);
    assert.deepEqual(sqrtInverseFrequencyWeights([4, 0]), [1, 1], 'a class never seen takes the largest weight of those seen');
    const logits = tf.tensor4d([1, 2, 0, 0.5, -1, 3, 2, 2, 2, 0, 0, 0], [1, 2, 2, 3]);
    const labels = tf.tensor3d([1, 255, 0, 2], [1, 2, 2], 'int32');
    const lse = (z: number[]) => Math.log(z.reduce((a, x) => a + Math.exp(x), 0));
    const cw = [0.5, 2, 3];
    const expected = (2 * (lse([1, 2, 0]) - 2) + 0.5 * (lse([2, 2, 2]) - 2) + 3 * (lse([0, 0, 0]) - 0)) / (2 + 0.5 + 3);
    const loss = crossEntropy(logits, labels, 255, cw);
    near(loss.dataSync()[0], expected, 1e-5, 'weighted cross entropy');
    tf.dispose([logits, labels, loss]);
  });

  it('hard-shapes: seeded, 161 px, 3 shapes + background; a class has no colour of its own', () => {
    const o = syntheticSet('hard-shapes');
    assert.deepEqual([o.width, o.height, o.classes, o.style], [161, 161, 4, 'random-colour']);
    const a = syntheticSample(5, o);
    assert.deepEqual(a.image.data, syntheticSample(5, o).image.data);
    // Mean colour of each object class per image: in the demo set it stays near the class colour,
    // in hard-shapes it spreads over the colour cube.
    const spread = (opts: typeof o) => {
      const means: number[][][] = [[], [], [], []];
      for (let i = 0; i < 30; i++) {
        const s = syntheticSample(i, opts);
        const sum = [0, 0, 0, 0].map(() => [0, 0, 0, 0]);
        s.label.data.forEach((c, p) => {
          for (let k = 0; k < 3; k++) sum[c][k] += s.image.data[3 * p + k];
          sum[c][3]++;
        });
        for (let c = 1; c < 4; c++) if (sum[c][3] > 50) means[c].push([0, 1, 2].map((k) => sum[c][k] / sum[c][3]));
      }
      // Mean over classes of the per-channel standard deviation of the class's mean colour.
      return means.slice(1).map((list) => {
        assert.ok(list.length > 5, 'every shape class appears');
        return [0, 1, 2].reduce((acc, k) => {
          const mu = list.reduce((x, m) => x + m[k], 0) / list.length;
          return acc + Math.sqrt(list.reduce((x, m) => x + (m[k] - mu) ** 2, 0) / list.length) / 3;
        }, 0);
      });
    };
    const demo = spread({ ...SYNTHETIC_SETS.shapes, width: 161, height: 161 });
    const hard = spread(o);
    for (let c = 0; c < 3; c++) {
      assert.ok(demo[c] < 25, `demo class ${c + 1}: colour spread ${demo[c]}`);
      assert.ok(hard[c] > 50, `hard class ${c + 1}: colour spread ${hard[c]}`);
    }
    assert.throws(() => syntheticSet('easy'), /unknown synthetic set "easy": shapes or hard-shapes/);
    assert.throws(() => syntheticSample(0, { style: 'pastel' as never }), /style/);
  });

  it('hard-shapes difficulty knobs (bench/recipe-dump.ts, RECIPE_SET): texture scale, whole and separate objects, upright shapes', () => {
    const o = { ...syntheticSet('hard-shapes'), maxShapes: 3 };
    // texture 0: the background is one flat colour; 1 (the set) is textured; the objects are drawn the same.
    const flat = syntheticSample(3, { ...o, texture: 0 });
    const textured = syntheticSample(3, o);
    assert.deepEqual(flat.label.data, textured.label.data);
    const bgValues = (s: typeof flat) => new Set(Array.from(s.label.data.keys()).filter((p) => s.label.data[p] === 0).map((p) => s.image.data[3 * p]));
    assert.equal(bgValues(flat).size, 1);
    assert.ok(bgValues(textured).size > 40);
    // separate: no object pixel on the image's edge, and objects of different classes never adjacent.
    for (let i = 0; i < 20; i++) {
      const { width: W, height: H, data } = syntheticSample(i, { ...o, separate: true }).label;
      for (let p = 0; p < W * H; p++) {
        const x = p % W;
        const y = Math.floor(p / W);
        if (data[p] !== 0) assert.ok(x > 0 && y > 0 && x < W - 1 && y < H - 1, `sample ${i}: object pixel on the edge at ${x},${y}`);
        if (x < W - 1 && data[p] && data[p + 1]) assert.equal(data[p], data[p + 1]);
        if (y < H - 1 && data[p] && data[p + W]) assert.equal(data[p], data[p + W]);
      }
    }
    // rotate false: a square's pixels fill its bounding box (a turned square fills about half to all of it).
    let squares = 0;
    for (let i = 0; i < 20; i++) {
      const { width: W, data } = syntheticSample(i, { ...o, separate: true, rotate: false, maxShapes: 1 }).label;
      const px = Array.from(data.keys()).filter((p) => data[p] === 2);
      if (px.length === 0) continue;
      squares++;
      const xs = px.map((p) => p % W);
      const ys = px.map((p) => Math.floor(p / W));
      const box = (Math.max(...xs) - Math.min(...xs) + 1) * (Math.max(...ys) - Math.min(...ys) + 1);
      assert.equal(px.length, box, `sample ${i}: an upright square fills its box`);
    }
    assert.ok(squares >= 3);
    assert.throws(() => syntheticSample(0, { ...o, texture: -1 }), /texture must be a number in 0..4/);
  });

  it('presets: small data for hard shapes, the published v2 and v3+ recipes, ImageNet fine-tuning by default for those', () => {
    const ctx = { userDir: '/home/u/.node-red', nodeId: 'n1' };
    const hard = trainSetupFromProps({ synSet: 'hard-shapes' }, ctx).config;
    assert.equal(hard.train.kind === 'synthetic' && hard.train.options?.style, 'random-colour');
    assert.equal(hard.train.kind === 'synthetic' && hard.train.options?.width, 161);
    assert.deepEqual([hard.optimizer, hard.lr, hard.warmupIter, hard.batchSize, hard.cropSize, hard.classWeights, hard.headLrMult, hard.freezeBN, hard.maxIter],
      ['adam', SMALL_DATA.lr, SMALL_DATA.warmupIter, SMALL_DATA.batchSize, SMALL_DATA.cropSize, 'sqrt-inverse', 1, false, SMALL_DATA.maxIter]);
    assert.equal(hard.model.spec.width, SMALL_DATA.width);
    assert.equal(hard.init, undefined, 'small data trains from scratch');

    const folder = { source: 'folder', dir: 'VOC', layout: 'voc' };
    const v2 = trainSetupFromProps({ ...folder, preset: 'v2' }, ctx).config;
    assert.deepEqual([v2.optimizer, v2.lr, v2.lrPower, v2.batchSize * v2.iterSize, v2.maxIter, v2.cropSize, v2.headLrMult], ['sgd', 2.5e-4, 0.9, 10, 20000, 321, 10]);
    const v3 = trainSetupFromProps({ ...folder, preset: 'v3plus' }, ctx).config;
    assert.deepEqual([v3.optimizer, v3.lr, v3.lrPower, v3.batchSize * v3.iterSize, v3.maxIter, v3.cropSize], ['sgd', 0.007, 0.9, 16, 30000, 513]);
    // The default network for folders (v3+ MobileNetV2, width 1, ImageNet preprocessing) starts from torchvision's ImageNet backbone, BN frozen.
    assert.deepEqual(v3.init, { source: 'published', id: 'torchvision/mobilenet_v2_imagenet', cacheDir: path.join(ctx.userDir, 'deeplab-weights') });
    assert.equal(v3.freezeBN, true);
    assert.deepEqual(trainSetupFromProps(folder, ctx).config.init, v3.init, 'auto for folders: the v2 recipe, fine-tuned from ImageNet');
    assert.equal(trainSetupFromProps({ ...folder, initFrom: 'scratch' }, ctx).config.init, undefined);
    // Networks those weights do not fit (another width, Caffe preprocessing) stay as they are.
    const narrow = normalizeModelConfig({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', classes: 21, width: 0.5 }, preprocessing: 'imagenet' });
    assert.equal(trainSetupFromProps({ ...folder, preset: 'v3plus' }, { ...ctx, model: narrow }).config.init, undefined);
    const caffe = normalizeModelConfig({ spec: { variant: 'v2', backbone: 'resnet101', classes: 21 } });
    assert.equal(imagenetBackboneFor(caffe), undefined);
    assert.equal(imagenetBackboneFor(normalizeModelConfig({ spec: { variant: 'v2', backbone: 'resnet101', classes: 21 }, preprocessing: 'imagenet' })), 'torchvision/resnet101_imagenet');
    // The demo is as it was; a start message can switch the optimiser; bad names are refused.
    const demo = trainSetupFromProps({}, ctx).config;
    assert.deepEqual([demo.optimizer, demo.lr, demo.cropSize, demo.headLrMult, demo.classWeights, demo.model.spec.width], ['sgd', 0.02, 97, 10, 'none', 0.125]);
    assert.equal(trainSetupFromProps({}, ctx, { optimizer: 'adam', warmupIter: 5 }).config.optimizer, 'adam');
    assert.throws(() => trainSetupFromProps({ preset: 'fast' }, ctx), /preset must be one of auto, small-data, v2, v3plus/);
    assert.throws(() => trainSetupFromProps({ optimizer: 'rmsprop' }, ctx), /optimiser must be one of auto, sgd, adam/);
    assert.throws(() => normalizeTrainConfig({ train: hard.train, optimizer: 'rmsprop' as never }), /optimizer must be sgd or adam/);
    assert.throws(() => normalizeTrainConfig({ train: hard.train, classWeights: [1, 2] }), /classWeights must be 21 numbers/);
  });

  it('the default ImageNet backbone that cannot be had (offline, not cached): the error says how to train without it', async () => {
    const ctx = { userDir: '/home/u/.node-red', nodeId: 'n1' };
    const folder = { source: 'folder', dir: 'VOC', layout: 'voc' };
    const hint = trainSetupFromProps(folder, ctx).config.initHint;
    assert.match(hint ?? '', /ImageNet backbone "torchvision\/mobilenet_v2_imagenet"/);
    assert.match(hint ?? '', /set "initialise from" to scratch \(initFrom: "scratch"\)/);
    // Weights the user chose (or none) are not a default: no hint.
    assert.equal(trainSetupFromProps({ ...folder, initFrom: 'scratch' }, ctx).config.initHint, undefined);
    assert.equal(trainSetupFromProps({ ...folder, initFrom: 'published', initPublishedId: 'torchvision/mobilenet_v2_imagenet' }, ctx).config.initHint, undefined);
    // The trainer adds the hint to the reading error (a missing folder stands for the failed download: no network in a test).
    const config = normalizeTrainConfig({
      model: { spec: { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classes: 4 } },
      train: { kind: 'synthetic', count: 2, options: { width: 33, height: 33, classes: 4 } },
      init: { source: 'dir', path: path.join(ctx.userDir, 'no-such-weights') },
      initHint: hint,
    });
    await assert.rejects(Trainer.create(config), (err: Error) => err.message.includes('no-such-weights') && err.message.endsWith(hint!));
  });
});
