import { strict as assert } from 'assert';
import { ScoreMap } from '../../lib/contract';
import { closeCrfHelper } from '../../lib/crf/parallel';
import { CRF_PRESETS } from '../../lib/crf/params';
import { denseCrf } from '../../lib/crf/dense-crf';
import { crfBytesPerPixel, denseCrfAtWorkingSize, planCrf } from '../../lib/crf/working-resolution';
import { fuseScoreMaps, planFusion } from '../../lib/fusion';
import { inferMemory } from '../../lib/inference/memory';
import { areaDownscale } from '../../lib/ops/image-resize';
import { argmaxScoreMap, interpolatedLabels, planUpsample, resizeScoreMap, upsampleScoreMap } from '../../lib/ops/score-map';
import {
  MB, MemoryBudgetError, OVER_BUDGET_CODE, checkMemory, defaultMemoryBudget, fitSize, memoryBudgetBytes,
} from '../../lib/runtime/memory-budget';
import { seededRandom } from '../../lib/runtime/random';
import { noisyLogits, pixelAccuracy, scene } from './crf-fixtures';

function randomMap(w: number, h: number, c: number, seed: number, stride = 8): ScoreMap {
  const r = seededRandom(seed);
  return { width: w, height: h, classes: c, data: Float32Array.from({ length: w * h * c }, () => r() * 8 - 4), kind: 'logits', stride };
}

describe('lib/runtime/memory-budget and the stages that plan with it', () => {
  after(() => closeCrfHelper());

  it('reads the budget: node property in MB, blank takes DEEPLAB_MEMORY_BUDGET_MB, else 512 MB', () => {
    assert.equal(defaultMemoryBudget({}), 512 * MB);
    assert.equal(defaultMemoryBudget({ DEEPLAB_MEMORY_BUDGET_MB: '64' }), 64 * MB);
    assert.equal(defaultMemoryBudget({ DEEPLAB_MEMORY_BUDGET_MB: 'lots' }), 512 * MB, 'an unreadable override is ignored');
    assert.equal(memoryBudgetBytes('100'), 100 * MB);
    assert.equal(memoryBudgetBytes(0.5), MB / 2);
    assert.equal(memoryBudgetBytes(''), defaultMemoryBudget());
    assert.throws(() => memoryBudgetBytes('-3'), /memory budget must be a number of MB above 0/);
  });

  it('refuses with a code a Catch node sees, naming the need and the budget', () => {
    checkMemory(100, 100, 'x');
    assert.throws(() => checkMemory(3 * MB, 2 * MB, 'labels at 4000x3000'), (e: MemoryBudgetError) =>
      e instanceof MemoryBudgetError && Object.prototype.hasOwnProperty.call(e, 'code') && e.code === OVER_BUDGET_CODE &&
      /labels at 4000x3000 needs 3 MB, above this node's memory budget of 2 MB/.test(e.message));
  });

  it('fits the largest size of the same aspect under the budget', () => {
    assert.deepEqual(fitSize(400, 300, 10, 0, 1e9), { width: 400, height: 300 });
    const s = fitSize(4000, 3000, 100, 1000, 50e6)!;
    assert.ok(s.width * s.height * 100 + 1000 <= 50e6);
    assert.ok((s.width + 2) * (s.height + 2) * 100 + 1000 > 50e6, 'not needlessly small');
    assert.ok(Math.abs(s.width / s.height - 4 / 3) < 0.01);
    assert.equal(fitSize(4000, 3000, 100, 60e6, 50e6), undefined, 'the fixed part alone is over');
  });

  it('upsample: labels at full size pixel by pixel, the same as argmax of the resized map; float maps capped', () => {
    for (const align of [true, false]) {
      const m = randomMap(9, 7, 5, align ? 1 : 2);
      assert.deepEqual(interpolatedLabels(m, 41, 29, align).data, argmaxScoreMap(resizeScoreMap(m, 41, 29, align)).data);
    }
    const logits = { width: 65, height: 49, classes: 21 };
    const labels = planUpsample(logits, 4000, 3000, 'labels', 512 * MB);
    assert.deepEqual([labels.capped, labels.floatSize], [false, undefined]);
    const probs = planUpsample(logits, 4000, 3000, 'probs', 512 * MB);
    assert.ok(probs.capped && probs.need <= 512 * MB, 'probabilities at 4000x3000x21 (1 GB, 2 copies) do not fit');
    assert.ok(probs.floatSize!.width > 1500, `${probs.floatSize!.width}: as large as fits`);
    assert.deepEqual(planUpsample(logits, 513, 513, 'probs', 512 * MB).floatSize, { width: 513, height: 513 });
    assert.throws(() => planUpsample(logits, 4000, 3000, 'labels', 8 * MB), /labels at 4000x3000 .* needs 11.7 MB/);
    // Capped: the map at the planned size with its stride, the labels still full size.
    const m = randomMap(9, 7, 3, 3);
    const r = upsampleScoreMap({ map: m, width: 80, height: 60, alignCorners: true, output: 'both', floatSize: { width: 20, height: 15 } });
    assert.deepEqual([r.map!.width, r.map!.height, r.map!.stride, r.map!.kind], [20, 15, 4, 'probs']);
    assert.deepEqual([r.labels!.width, r.labels!.height], [80, 60]);
    assert.deepEqual(r.labels!.data, interpolatedLabels(m, 80, 60, true).data);
  });

  it('msc-fusion: the output capped to the budget fuses like a fusion to that size, with the stride to match', () => {
    const maps = [randomMap(33, 25, 21, 4, 8), { ...randomMap(17, 13, 21, 5, 16), scale: 0.5 }];
    const full = planFusion(maps, { base: 'image', width: 257, height: 193 }, 512 * MB);
    assert.equal(full.cappedFrom, undefined);
    const capped = planFusion(maps, { base: 'image', width: 257, height: 193 }, 4 * MB);
    assert.deepEqual(capped.cappedFrom, { width: 257, height: 193 });
    assert.ok(capped.need <= 4 * MB);
    const t = capped.target;
    assert.ok(Math.abs(t.stride - 257 / t.width) < 1e-9);
    const fused = fuseScoreMaps(maps, { base: 'image', width: 257, height: 193, target: t, alignCorners: true });
    assert.deepEqual(fused.data, fuseScoreMaps(maps, { base: 'image', width: t.width, height: t.height, alignCorners: true }).data);
    assert.deepEqual([fused.width, fused.height, fused.stride], [t.width, t.height, t.stride]);
    assert.throws(() => planFusion(maps, {}, 0.05 * MB), /the input maps alone take/);
  });

  it('deeplab-infer: the need grows with the image; activations count only when the image sets the run size', () => {
    const net = { stride: 8, classes: 21, spec: { backbone: 'mobilenetv2' as const, width: 1 } };
    const valid = { resize: 'valid' as const, size: 513, scales: [1], flip: false };
    const small = inferMemory(513, 513, valid, net);
    const big = inferMemory(4000, 3000, valid, net);
    assert.ok(big - small > 4000 * 3000 * 18 * 0.9, 'the decoded image and its copies');
    const none = inferMemory(4000, 3000, { ...valid, resize: 'none' }, net);
    assert.ok(none > 4000 * 3000 * 750, 'a forward pass at 4000x3000 counts its activations');
    assert.ok(none > 512 * MB && big < 512 * MB);
  });

  it('area downscaling averages the pixels each output pixel covers', () => {
    const data = Buffer.from([10, 0, 0, 30, 0, 0, 50, 0, 0, 70, 0, 0, /* row 2 */ 90, 0, 0, 110, 0, 0, 130, 0, 0, 150, 0, 0]);
    const half = areaDownscale({ width: 4, height: 2, channels: 3, data }, 2, 1);
    assert.deepEqual([...half.data], [60, 0, 0, 100, 0, 0]);
    const third = areaDownscale({ width: 3, height: 1, channels: 3, data: Buffer.from([0, 0, 0, 90, 0, 0, 180, 0, 0]) }, 2, 1);
    // Output 0 covers pixels 0 and half of 1: (0 + 0.5 * 90) / 1.5 = 30.
    assert.deepEqual([...third.data], [30, 0, 0, 150, 0, 0]);
  });

  it('dense CRF: at a size that fits it is denseCrf itself; capped, labels come back at the image size', function () {
    this.timeout(600_000);
    const { image, labels } = scene(96, 72, 4, 7, 10);
    const map = noisyLogits(labels, 4, 9);
    const params = CRF_PRESETS['deeplab-v2'];
    const plan = planCrf(map, image, 512 * MB);
    assert.deepEqual([plan.width, plan.height, plan.capped], [96, 72, false]);
    const full = denseCrfAtWorkingSize({ map, image, params, width: 96, height: 72, probs: true, options: { threads: 1 } });
    const ref = denseCrf(map, image, params, { threads: 1 });
    assert.deepEqual(full.probs!.data, ref.probs.data);
    assert.deepEqual(full.labels.data, argmaxScoreMap(ref.probs).data);

    const budget = 96 * 72 * 4 * 4 + 96 * 72 * 4 + 48 * 36 * (crfBytesPerPixel(4) + 3 + 16);
    const capped = planCrf(map, image, budget);
    assert.ok(capped.capped && capped.width <= 48 && capped.width >= 40, `${capped.width}x${capped.height}`);
    const r = denseCrfAtWorkingSize({ map, image, params, width: capped.width, height: capped.height, options: { threads: 1 } });
    assert.deepEqual([r.labels.width, r.labels.height, r.probs], [96, 72, undefined]);
    const before = pixelAccuracy(argmaxScoreMap(map), labels);
    const after = pixelAccuracy(r.labels, labels);
    assert.ok(after > before, `the CRF at ${capped.width}x${capped.height} still helps: ${before.toFixed(3)} -> ${after.toFixed(3)}`);
    assert.throws(() => planCrf(map, image, 0.01 * MB), /dense CRF of a 96x72 image with 4 classes needs/);
  });
});
