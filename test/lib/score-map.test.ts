import { strict as assert } from 'assert';
import { ScoreMap } from '../../lib/contract';
import { argmaxScoreMap, flipScoreMap, resizeScoreMap, softmaxScoreMap } from '../../lib/ops/score-map';
import { planInference } from '../../lib/inference/plan';

function map(width: number, height: number, classes: number, values: number[]): ScoreMap {
  return { width, height, classes, data: Float32Array.from(values), kind: 'logits', stride: 8 };
}

describe('lib/ops: score-map operations', () => {
  it('align-corners bilinear: 2x2 -> 3x3 puts the corners on the corners and averages between', () => {
    const m = map(2, 2, 1, [0, 2, 4, 6]);
    const r = resizeScoreMap(m, 3, 3, true);
    assert.deepEqual([...r.data], [0, 1, 2, 2, 3, 4, 4, 5, 6]);
  });

  it('half-pixel bilinear (PyTorch align_corners=False): 2 -> 4 samples at 0, 0.25, 0.75, 1 of the way', () => {
    const m = map(2, 1, 1, [0, 4]);
    const r = resizeScoreMap(m, 4, 1, false);
    // Source x = (i + 0.5) * 2 / 4 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped to the edge)
    assert.deepEqual([...r.data], [0, 1, 3, 4]);
  });

  it('resizing keeps the classes interleaved and identity resizing is exact', () => {
    const m = map(2, 1, 2, [1, 10, 3, 30]);
    assert.deepEqual([...resizeScoreMap(m, 3, 1, true).data], [1, 10, 2, 20, 3, 30]);
    assert.deepEqual([...resizeScoreMap(m, 2, 1, true).data], [...m.data]);
    assert.deepEqual([...resizeScoreMap(m, 2, 1, false).data], [...m.data]);
  });

  it('flip is an involution and mirrors columns', () => {
    const m = map(3, 1, 1, [1, 2, 3]);
    assert.deepEqual([...flipScoreMap(m).data], [3, 2, 1]);
    assert.deepEqual([...flipScoreMap(flipScoreMap(m)).data], [1, 2, 3]);
  });

  it('softmax: sums to one, invariant to a shift, and stable for large logits', () => {
    const p = softmaxScoreMap(map(1, 2, 3, [1, 2, 3, 1001, 1002, 1003]));
    assert.equal(p.kind, 'probs');
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const s = e[0] + e[1] + e[2];
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(p.data[i] - e[i] / s) < 1e-6);
      assert.ok(Math.abs(p.data[i + 3] - e[i] / s) < 1e-6);
    }
  });

  it('argmax takes the first of ties', () => {
    const l = argmaxScoreMap(map(3, 1, 2, [0, 1, 5, 2, 3, 3]));
    assert.deepEqual([...l.data], [1, 0, 0]);
    assert.equal(l.ignoreIndex, 255);
  });

  it('inference plans: valid sizes k*stride+1, longest side to N', () => {
    const p = planInference(500, 375, 16, { size: 513, scales: [0.5, 1] });
    assert.deepEqual(p.runs.map((r) => [r.width, r.height]), [[257, 193], [513, 385]]);
    const pad = planInference(500, 375, 16, { resize: 'pad', size: 513 });
    assert.deepEqual(pad.runs.map((r) => [r.width, r.height, r.padRight, r.padBottom]), [[513, 385, 0, 0]]);
    const pad2 = planInference(400, 300, 8, { resize: 'pad', size: 500 });
    assert.deepEqual(pad2.runs.map((r) => [r.width, r.height, r.padRight, r.padBottom]), [[500, 375, 5, 2]]);
    assert.throws(() => planInference(10, 10, 8, { scales: [] }), /scales/);
  });
});
