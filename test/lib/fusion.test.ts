import { strict as assert } from 'assert';
import { ScoreMap } from '../../lib/contract';
import { fuseScoreMaps, fusionTarget } from '../../lib/fusion';
import { flipScoreMap, resizeScoreMap } from '../../lib/ops/score-map';
import { WorkerPool } from '../../lib/compute/pool';
import { fuse } from '../../lib/compute/client';

const map = (w: number, h: number, c: number, v: number[], extra: Partial<ScoreMap> = {}): ScoreMap =>
  ({ width: w, height: h, classes: c, data: Float32Array.from(v), kind: 'logits', stride: 8, ...extra });
const near = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} != ${b[i]}`);
};

function randomMap(w: number, h: number, c: number, seed: number, extra: Partial<ScoreMap> = {}): ScoreMap {
  let s = seed;
  const v = Array.from({ length: w * h * c }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 8 - 4);
  return map(w, h, c, v, extra);
}

describe('lib/fusion: multi-scale and flip fusion', () => {
  it('returns the same map for one scale in, whatever the method', () => {
    const m = randomMap(3, 2, 4, 1, { scale: 1 });
    for (const method of ['max', 'mean-logits'] as const) {
      const out = fuseScoreMaps([m], { method });
      near(out.data, m.data, 0);
      assert.equal(out.width, 3);
      assert.equal(out.kind, 'logits');
      assert.equal(out.stride, 8);
    }
  });

  it('takes the element-wise max and means of hand-computed 1x2 maps', () => {
    // Two classes, two pixels. b is the flipped copy: its pixels are mirrored back before fusing.
    const a = map(2, 1, 2, [1, 5, -2, 0], { scale: 1 });
    const b = map(2, 1, 2, [3, 3, 4, -1], { scale: 1, flipped: true }); // unflipped: [4,-1, 3,3]
    near(fuseScoreMaps([a, b], { method: 'max' }).data, [4, 5, 3, 3]);
    near(fuseScoreMaps([a, b], { method: 'mean-logits' }).data, [2.5, 2, 0.5, 1.5]);
    const sm = (x: number, y: number) => [Math.exp(x) / (Math.exp(x) + Math.exp(y)), Math.exp(y) / (Math.exp(x) + Math.exp(y))];
    const pa = [...sm(1, 5), ...sm(-2, 0)];
    const pb = [...sm(4, -1), ...sm(3, 3)];
    const out = fuseScoreMaps([a, b], { method: 'mean-probs' });
    assert.equal(out.kind, 'probs');
    near(out.data, pa.map((v, i) => (v + pb[i]) / 2));
  });

  it('resizes the other scales to the scale-1 map bilinearly (hand-computed, align corners)', () => {
    // Scale 0.5: a 2x1 map resized to 3x1 with corners aligned -> [x0, (x0+x1)/2, x1].
    const s1 = map(3, 1, 1, [0, 0, 0], { scale: 1 });
    const s05 = map(2, 1, 1, [2, 6], { scale: 0.5, stride: 8 });
    const out = fuseScoreMaps([s05, s1], { method: 'mean-logits', alignCorners: true });
    near(out.data, [1, 2, 3]);
    assert.equal(out.width, 3);
    assert.equal(out.stride, 8);
    near(fuseScoreMaps([s05, s1], { method: 'max', alignCorners: true }).data, [2, 4, 6]);
  });

  it('does not depend on the order of the array', () => {
    const maps = [
      randomMap(9, 7, 5, 1, { scale: 1 }), randomMap(9, 7, 5, 2, { scale: 1, flipped: true }),
      randomMap(5, 4, 5, 3, { scale: 0.5 }), randomMap(5, 4, 5, 4, { scale: 0.5, flipped: true }),
      randomMap(14, 11, 5, 5, { scale: 1.5 }), randomMap(14, 11, 5, 6, { scale: 1.5, flipped: true }),
    ];
    for (const method of ['max', 'mean-probs', 'mean-logits'] as const) {
      for (const base of ['scale1', 'largest'] as const) {
        const ref = fuseScoreMaps(maps, { method, base });
        for (const perm of [[5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 3, 4], [1, 3, 5, 0, 2, 4]]) {
          const out = fuseScoreMaps(perm.map((i) => maps[i]), { method, base });
          assert.deepEqual(out.data, ref.data, `${method}/${base} perm ${perm}`);
        }
      }
    }
  });

  it('equals a direct reference built from resize and flip', () => {
    const a = randomMap(9, 7, 3, 11, { scale: 1 });
    const b = randomMap(5, 4, 3, 12, { scale: 0.5, flipped: true });
    const out = fuseScoreMaps([a, b], { method: 'mean-logits', base: 'image', width: 17, height: 13, alignCorners: false });
    const ra = resizeScoreMap(a, 17, 13, false).data;
    const rb = flipScoreMap(resizeScoreMap(b, 17, 13, false)).data;
    near(out.data, ra.map((v, i) => (v + rb[i]) / 2), 1e-5);
    assert.equal(out.stride, 1);
  });

  it('picks the base size as configured', () => {
    const maps = [randomMap(5, 4, 2, 1, { scale: 0.5, stride: 8 }), randomMap(9, 7, 2, 1, { scale: 1 }), randomMap(14, 11, 2, 1, { scale: 1.5 })];
    assert.deepEqual(fusionTarget(maps, { base: 'scale1' }), { width: 9, height: 7, stride: 8 });
    assert.deepEqual(fusionTarget(maps, { base: 'largest' }), { width: 14, height: 11, stride: 8 / 1.5 });
    assert.deepEqual(fusionTarget([maps[0], maps[2]], { base: 'scale1' }), { width: 14, height: 11, stride: 8 / 1.5 }, 'no scale 1: the largest');
    assert.throws(() => fusionTarget(maps, { base: 'image' }), /needs the image's width and height/);
  });

  it('refuses maps that cannot be fused, with clear messages', () => {
    assert.throws(() => fuseScoreMaps([]), /empty array/);
    assert.throws(() => fuseScoreMaps([map(1, 1, 2, [0, 0]), map(1, 1, 3, [0, 0, 0])]), /same classes; map 0 has 2, map 1 has 3/);
    assert.throws(() => fuseScoreMaps([map(1, 1, 2, [0, 0]), map(1, 1, 2, [0.5, 0.5], { kind: 'probs' })], { method: 'max' }), /logits and probabilities/);
    assert.throws(() => fuseScoreMaps([map(1, 1, 2, [0.5, 0.5], { kind: 'probs' })], { method: 'mean-logits' }), /use mean-probs/);
    assert.throws(() => fuseScoreMaps([{ width: 2 } as unknown as ScoreMap]), /\[0\]: expected a ScoreMap/);
    // mean-probs accepts a mix: probabilities are used as they are.
    const mixed = fuseScoreMaps([map(1, 1, 2, [0, 0]), map(1, 1, 2, [1, 0], { kind: 'probs' })], { method: 'mean-probs' });
    near(mixed.data, [0.75, 0.25]);
  });

  it('runs in a compute worker (lib/compute/client fuse) with the same result', async () => {
    const pool = new WorkerPool(1);
    try {
      const maps = [randomMap(9, 7, 3, 1, { scale: 1 }), randomMap(5, 4, 3, 2, { scale: 0.5, flipped: true })];
      const ref = fuseScoreMaps(maps, { method: 'mean-probs' });
      const out = await fuse(maps, { method: 'mean-probs' }, pool);
      assert.deepEqual(out.data, ref.data);
      await assert.rejects(fuse([], {}, pool), /empty array/);
      assert.equal(maps[0].data.length, 9 * 7 * 3, 'the caller keeps its maps');
    } finally {
      await pool.close();
    }
  });
});
