import { strict as assert } from 'assert';
import sharp from 'sharp';
import { LabelMap } from '../../lib/contract';
import { ConfusionMatrix, computeMetrics, confusionHeatmap, confusionHeatmapPng, imageFigures, reportTable } from '../../lib/metrics';

const lm = (w: number, h: number, v: number[]): LabelMap => ({ width: w, height: h, data: Uint8Array.from(v), ignoreIndex: 255 });
const close = (a: number | null, b: number, what = '') => assert.ok(a !== null && Math.abs(a - b) < 1e-12, `${what}: ${a} != ${b}`);

// GT rows / prediction columns of the hand example:
//   GT  0 0 1 | 1 2 255      pred 0 1 1 | 2 2 0
//   -> [[1,1,0],[0,1,1],[0,0,1]], the void GT pixel skipped.
const GT = lm(3, 2, [0, 0, 1, 1, 2, 255]);
const PRED = lm(3, 2, [0, 1, 1, 2, 2, 0]);

describe('lib/metrics: confusion matrix and IoU', () => {
  it('matches a hand-computed matrix and its figures', () => {
    const cm = new ConfusionMatrix(3);
    cm.add(PRED, GT);
    const r = cm.report(['a', 'b', 'c']);
    assert.deepEqual(r.confusion, [[1, 1, 0], [0, 1, 1], [0, 0, 1]]);
    assert.equal(r.pixels, 5);
    assert.equal(r.ignoredPixels, 1);
    assert.equal(r.images, 1);
    close(r.perClass[0].iou, 1 / 2, 'iou0');
    close(r.perClass[1].iou, 1 / 3, 'iou1');
    close(r.perClass[2].iou, 1 / 2, 'iou2');
    close(r.meanIoU, 4 / 9, 'miou');
    close(r.pixelAccuracy, 3 / 5, 'pa');
    close(r.meanClassAccuracy, (1 / 2 + 1 / 2 + 1) / 3, 'macc');
    close(r.frequencyWeightedIoU, (2 / 5) * (1 / 2) + (2 / 5) * (1 / 3) + (1 / 5) * (1 / 2), 'fwiou');
    close(r.perClass[2].precision, 1 / 2, 'precision2');
    assert.equal(r.perClass[1].name, 'b');
    assert.deepEqual(reportTable(r)[1], { id: 1, class: 'b', iou: 33.33, accuracy: 50, precision: 50, gtPixels: 2, predPixels: 2 });
  });

  it('differs between the VOC and classes-present rules exactly on absent classes', () => {
    // Four classes; class 3 is in neither GT nor prediction.
    const cm = new ConfusionMatrix(4);
    cm.add(PRED, GT);
    const voc = cm.report([], 'voc');
    const present = cm.report([], 'present');
    assert.equal(voc.perClass[3].iou, null, 'IoU of a class absent from both is undefined');
    close(voc.meanIoU, (1 / 2 + 1 / 3 + 1 / 2) / 4, 'voc rule: mean over all 4 classes, absent counts 0');
    close(present.meanIoU, (1 / 2 + 1 / 3 + 1 / 2) / 3, 'present rule: nanmean over the 3 classes with a union');
    close(voc.meanIoUPresent, 4 / 9);
    close(present.meanIoUVoc, 1 / 3);
    // A class predicted but absent from the GT has IoU 0 under both rules (its union is not empty).
    const cm2 = new ConfusionMatrix(4);
    cm2.add(lm(3, 2, [0, 1, 1, 2, 3, 0]), GT);
    const r2 = cm2.report([], 'present');
    assert.equal(r2.perClass[3].iou, 0);
    close(r2.meanIoUPresent, (1 / 2 + 1 / 3 + 0 + 0) / 4);
    close(r2.meanIoUVoc, (1 / 2 + 1 / 3 + 0 + 0) / 4);
    close(r2.meanClassAccuracy, (1 / 2 + 1 / 2 + 0) / 3, 'mean accuracy over GT-present classes');
  });

  it('counts void predictions as misses of the true class, nobody\'s false positive', () => {
    const cm = new ConfusionMatrix(2);
    cm.add(lm(2, 2, [0, 255, 1, 1]), lm(2, 2, [0, 0, 1, 255]));
    const r = cm.report();
    assert.deepEqual(r.confusion, [[1, 0], [0, 1]]);
    assert.equal(r.voidPredictions, 1);
    close(r.perClass[0].iou, 1 / 2);
    close(r.perClass[1].iou, 1);
    close(r.pixelAccuracy, 2 / 3);
  });

  it('accumulates over images like one brute-force count over all pixels', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
    const C = 5;
    const cm = new ConfusionMatrix(C);
    const brute = Array.from({ length: C }, () => new Array(C).fill(0));
    for (let k = 0; k < 6; k++) {
      const n = 40 + k * 7;
      const g = Array.from({ length: n }, () => (rnd() < 0.1 ? 255 : Math.floor(rnd() * C)));
      const p = g.map((v) => (rnd() < 0.6 && v !== 255 ? v : Math.floor(rnd() * C)));
      const per = cm.add(lm(n, 1, p), lm(n, 1, g));
      const img = imageFigures(per, C);
      let ok = 0;
      let tot = 0;
      for (let i = 0; i < n; i++) {
        if (g[i] === 255) continue;
        brute[g[i]][p[i]]++;
        tot++;
        if (g[i] === p[i]) ok++;
      }
      close(img.pixelAccuracy, ok / tot, 'per-image accuracy');
    }
    const r = cm.report([], 'voc');
    assert.deepEqual(r.confusion, brute);
    for (let c = 0; c < C; c++) {
      const tp = brute[c][c];
      const fn = brute[c].reduce((a, b) => a + b, 0) - tp;
      const fp = brute.reduce((a, row) => a + row[c], 0) - tp;
      close(r.perClass[c].iou, tp / (tp + fp + fn), `class ${c}`);
    }
    assert.equal(r.images, 6);
    cm.reset();
    assert.equal(cm.report().pixels, 0);
    assert.equal(cm.report().meanIoU, null);
  });

  it('refuses mismatched sizes and out-of-range labels without counting', () => {
    const cm = new ConfusionMatrix(3);
    assert.throws(() => cm.add(lm(2, 1, [0, 0]), lm(1, 2, [0, 0])), /prediction is 2x1 but the ground truth is 1x2/);
    assert.throws(() => cm.add(lm(2, 1, [0, 0]), lm(2, 1, [0, 3])), /ground truth holds label 3 at pixel \(1, 0\); expected class ids 0..2 or 255/);
    assert.throws(() => cm.add(lm(2, 1, [0, 9]), lm(2, 1, [0, 1])), /prediction holds label 9/);
    assert.equal(cm.report().pixels, 0);
    assert.throws(() => new ConfusionMatrix(3, 1), /ignore index 1 is a class id/);
    assert.throws(() => computeMetrics([1, 2], 3), /not 3 x 4/);
  });

  it('draws a row-normalised heatmap with class-colour keys', async () => {
    const img = confusionHeatmap([[3, 1], [0, 0]], { cell: 10 });
    assert.equal(img.width, 31);
    const px = (x: number, y: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];
    assert.deepEqual(px(25, 5), [128, 0, 0], 'top key: class 1 colour');
    assert.deepEqual(px(15, 5), [0, 0, 0], 'top key: class 0 colour');
    assert.deepEqual(px(5, 25), [128, 0, 0], 'left key: class 1 colour');
    const dark = px(15, 15);
    const light = px(25, 15);
    assert.ok(dark[0] < light[0], 'the 75% cell is darker than the 25% cell');
    assert.deepEqual(px(15, 25), [235, 235, 235], 'an empty GT row is grey');
    const png = await confusionHeatmapPng([[3, 1], [0, 0]]);
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, 'png');
  });
});
