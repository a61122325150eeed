import { strict as assert } from 'assert';
import { latticeKernel, smoothnessFeatures } from '../../lib/crf/mean-field';
import { SimdPart, planSimd } from '../../lib/crf/simd-mean-field';
import { releaseArena } from '../../lib/crf/arena';

/**
 * The SIMD kernels' exp (simd.ts expV: k by the 1.5 * 2^23 rounder, 2^k from the rounder's bits),
 * through the unary kernel: Q0 = softmax of the logits, against float64, over the whole range
 * the kernels see (x - max from 0 down past the -87 floor), with inputs where x log2 e lies on a
 * rounding tie (k + 0.5) and at k = -126, the smallest 2^k built.
 */
describe('lib/crf: the SIMD exp', () => {
  after(() => releaseArena());

  it('gives softmax(logits) to float32 precision across [-100, 0], ties and the floor included', () => {
    const C = 5;
    const xs: number[] = [];
    for (let i = 0; i <= 4000; i++) xs.push(-100 * (i / 4000));
    for (let k = 0; k <= 126; k++) xs.push(-(k + 0.5) / Math.LOG2E); // x log2 e = -(k + 0.5)
    xs.push(-87, -86.99, -125.5 / Math.LOG2E, -126 / Math.LOG2E);
    // pixel p: logits (0, x, x / 2, x / 3, -x / 7 - 0.1 * p) shifted by an offset the softmax ignores
    const n = xs.length;
    const W = 64;
    const H = Math.ceil(n / W);
    const data = new Float32Array(W * H * C);
    for (let p = 0; p < W * H; p++) {
      const x = xs[p % n];
      const off = (p % 7) - 3;
      const row = [0, x, x / 2, x / 3, x / 7 - 0.001 * (p % 13)];
      for (let c = 0; c < C; c++) data[p * C + c] = row[c] + off;
    }
    const kernel = latticeKernel(smoothnessFeatures(W, H, 3), W * H, 2, 1);
    const { arena, plan } = planSimd(W * H, C, [{ c0: 0, ct: C }], [kernel], undefined, undefined, false);
    const part = new SimdPart(plan, arena.memory, 0);
    part.loadUnary(arena.memory, data, 'logits', 1e-5);
    const q = part.readQ(arena.memory);
    let worst = 0;
    for (let p = 0; p < W * H; p++) {
      const row = Array.from(data.subarray(p * C, (p + 1) * C));
      const mx = Math.max(...row);
      // the kernels floor x - max at -87 (e^-87 ~ 1.6e-38, still a normal float32)
      const e = row.map((v) => Math.exp(Math.max(Math.fround(v - mx), -87)));
      const s = e.reduce((a, b) => a + b, 0);
      for (let c = 0; c < C; c++) {
        const want = e[c] / s;
        const got = q[p * C + c];
        const rel = Math.abs(got - want) / want;
        if (rel > worst) worst = rel;
        assert.ok(rel < 2e-6, `pixel ${p}, class ${c}: ${got} vs ${want} (x ${xs[p % n]})`);
      }
    }
    assert.ok(worst > 0, 'float32 results cannot all be exact');
  });
});
