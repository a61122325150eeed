import { strict as assert } from 'assert';
import { ScoreMap } from '../../lib/contract';
import { CrfParams, CRF_PRESETS, applyCrfOverride, crfPreset } from '../../lib/crf/params';
import { crf } from '../../lib/compute/client';
import { denseCrf } from '../../lib/crf/dense-crf';
import { closeCrfHelper } from '../../lib/crf/parallel';
import { setArenaLimit } from '../../lib/crf/arena';
import { argmaxScoreMap, softmaxScoreMap } from '../../lib/ops/score-map';
import { WorkerPool } from '../../lib/compute/pool';
import { noisyLogits, pixelAccuracy, scene } from './crf-fixtures';

const SMALL: CrfParams = { iterations: 5, w1: 5, thetaAlpha: 8, thetaBeta: 20, w2: 3, thetaGamma: 2 };

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function meanDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

function agreement(a: ScoreMap, b: ScoreMap): number {
  const la = argmaxScoreMap(a).data;
  const lb = argmaxScoreMap(b).data;
  let same = 0;
  for (let i = 0; i < la.length; i++) if (la[i] === lb[i]) same++;
  return same / la.length;
}

/** Moves class c of `map` to position perm[c]. */
function permute(map: ScoreMap, perm: number[]): ScoreMap {
  const C = map.classes;
  const out = new Float32Array(map.data.length);
  for (let p = 0; p < map.width * map.height; p++) for (let c = 0; c < C; c++) out[p * C + perm[c]] = map.data[p * C + c];
  return { ...map, data: out };
}

describe('lib/crf: dense CRF mean-field inference', () => {
  after(() => closeCrfHelper());

  // 80x60 = 4800 pixels: large enough that two threads really split the work.
  const big = scene(80, 60, 5, 21, 15);
  const bigMap = noisyLogits(big.labels, 5, 22);

  describe('identities', () => {
    it('0 iterations returns softmax(-U): the softmax of logits, the floored and renormalised probabilities', () => {
      const { image, labels } = scene(30, 20, 4, 1);
      const logits = noisyLogits(labels, 4, 2);
      const r = denseCrf(logits, image, { ...SMALL, iterations: 0 });
      assert.ok(maxDiff(r.probs.data, softmaxScoreMap(logits).data) < 1e-6);
      assert.equal(r.probs.kind, 'probs');
      assert.equal(r.probs.stride, 1);

      const probs = softmaxScoreMap(logits);
      probs.data[0] = 0; // floored to 1e-5, then the pixel renormalised
      const rp = denseCrf(probs, image, { ...SMALL, iterations: 0 });
      const d = probs.data;
      const floored = [Math.max(d[0], 1e-5), d[1], d[2], d[3]];
      const sum = floored.reduce((a, b) => a + b, 0);
      for (let c = 0; c < 4; c++) assert.ok(Math.abs(rp.probs.data[c] - floored[c] / sum) < 1e-6);
      assert.ok(maxDiff(rp.probs.data.subarray(4), probs.data.subarray(4)) < 1e-6);
    });

    it('with both weights 0 any number of iterations keeps softmax(-U), so the labels are the unary argmax', () => {
      for (const threads of [1, 2]) {
        const r = denseCrf(bigMap, big.image, { ...SMALL, iterations: 10, w1: 0, w2: 0 }, { threads });
        assert.ok(maxDiff(r.probs.data, softmaxScoreMap(bigMap).data) < 1e-6);
        assert.deepEqual(argmaxScoreMap(r.probs).data, argmaxScoreMap(bigMap).data);
      }
    });

    it('every pixel\'s probabilities sum to 1 (one and two threads, every preset)', () => {
      for (const threads of [1, 2]) {
        for (const name of ['deeplab-v2', 'deeplab-v1-largefov', 'densecrf-example'] as const) {
          const r = denseCrf(bigMap, big.image, CRF_PRESETS[name], { threads });
          const { data, classes } = r.probs;
          for (let p = 0; p < data.length; p += classes) {
            let s = 0;
            for (let c = 0; c < classes; c++) {
              assert.ok(data[p + c] >= 0 && data[p + c] <= 1);
              s += data[p + c];
            }
            assert.ok(Math.abs(s - 1) < 1e-5, `${name}, ${threads} threads, pixel ${p / classes}: sum ${s}`);
          }
        }
      }
    });

    it('permuting the classes of the input permutes the output', () => {
      const perm = [3, 0, 4, 1, 2];
      for (const threads of [1, 2]) {
        const a = denseCrf(bigMap, big.image, SMALL, { threads });
        const b = denseCrf(permute(bigMap, perm), big.image, SMALL, { threads });
        assert.ok(maxDiff(permute(a.probs, perm).data, b.probs.data) < 1e-5, `${threads} threads`);
      }
    });

    it('two threads give the result of one thread', () => {
      for (const params of [SMALL, CRF_PRESETS['deeplab-v2'], { ...SMALL, w1: 0 }, { ...SMALL, w2: 0 }]) {
        const a = denseCrf(bigMap, big.image, params, { threads: 1 });
        const b = denseCrf(bigMap, big.image, params, { threads: 2 });
        assert.equal(a.timing.threads, 1);
        assert.equal(b.timing.threads, 2);
        assert.deepEqual(a.timing.latticePoints, b.timing.latticePoints);
        assert.ok(maxDiff(a.probs.data, b.probs.data) < 1e-5);
      }
    });

    it('the WebAssembly SIMD kernels give the JavaScript kernels\' result (one and two threads)', () => {
      for (const params of [SMALL, CRF_PRESETS['deeplab-v2'], { ...SMALL, w2: 0 }]) {
        const js = denseCrf(bigMap, big.image, params, { threads: 1, simd: false });
        for (const threads of [1, 2]) {
          const wasm = denseCrf(bigMap, big.image, params, { threads, simd: true });
          assert.equal(wasm.timing.threads, threads);
          // float32 accumulation order and the f32x4 exp differ in the last bits
          assert.ok(maxDiff(js.probs.data, wasm.probs.data) < 1e-5, `${threads} threads`);
        }
      }
    });

    it('falls back to the JavaScript kernels when the WebAssembly memory would be too large', () => {
      const js = denseCrf(bigMap, big.image, SMALL, { threads: 1, simd: false });
      const prev = setArenaLimit(1 << 20);
      try {
        for (const threads of [1, 2]) {
          const r = denseCrf(bigMap, big.image, SMALL, { threads, simd: true });
          assert.ok(maxDiff(js.probs.data, r.probs.data) < 1e-5, `${threads} threads`);
        }
      } finally {
        setArenaLimit(prev);
      }
    });

    it('keeps its memory bounded over many two-thread runs (shared buffers are reused, not piled up in the helper)', () => {
      // Before reuse, each run here left ~15 MB of shared memory referenced from the idle helper.
      const sc = scene(192, 192, 21, 31, 15);
      const m = noisyLogits(sc.labels, 21, 32);
      for (let i = 0; i < 3; i++) denseCrf(m, sc.image, CRF_PRESETS['densecrf-example'], { threads: 2 });
      const rss0 = process.memoryUsage().rss;
      for (let i = 0; i < 14; i++) denseCrf(m, sc.image, CRF_PRESETS['densecrf-example'], { threads: 2 });
      const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
      assert.ok(grown < 100, `RSS grew ${grown.toFixed(0)} MB over 14 runs`);
    });

    it('leaves its input untouched', () => {
      const copy = Float32Array.from(bigMap.data);
      const img = Uint8Array.from(big.image.data);
      denseCrf(bigMap, big.image, SMALL, { threads: 2 });
      assert.deepEqual(bigMap.data, copy);
      assert.deepEqual(big.image.data, img);
    });
  });

  describe('lattice against exact (brute-force) filtering', () => {
    // Measured on these scenes: mean |ΔQ| 0.0001-0.0017, labels agree on 99.6-100 % of pixels
    // (single near-tie pixels can flip, which mean field then amplifies locally).
    const cases: [string, CrfParams][] = [
      ['narrow kernels', SMALL],
      ['10 iterations, θγ 1', { iterations: 10, w1: 4, thetaAlpha: 20, thetaBeta: 13, w2: 3, thetaGamma: 1 }],
      ['reference example', CRF_PRESETS['densecrf-example']],
    ];
    for (const [name, params] of cases) {
      it(`${name}: mean |ΔQ| < 0.005, labels agree on >= 99 % of pixels, same accuracy within 1 %`, () => {
        for (const seed of [1, 2, 3]) {
          const { image, labels } = scene(28, 20, 4, seed, 15);
          const map = noisyLogits(labels, 4, seed + 10);
          const exact = denseCrf(map, image, params, { filter: 'exact' });
          const lattice = denseCrf(map, image, params, { threads: 1 });
          assert.ok(meanDiff(exact.probs.data, lattice.probs.data) < 0.005, `seed ${seed}`);
          assert.ok(agreement(exact.probs, lattice.probs) >= 0.99, `seed ${seed}`);
          const accE = pixelAccuracy(argmaxScoreMap(exact.probs), labels);
          const accL = pixelAccuracy(argmaxScoreMap(lattice.probs), labels);
          assert.ok(Math.abs(accE - accL) <= 0.01, `seed ${seed}: ${accE} vs ${accL}`);
          // And both clean up the noisy unary on these scenes.
          assert.ok(accE > pixelAccuracy(argmaxScoreMap(map), labels) + 0.2);
        }
      });
    }
  });

  describe('parameters and errors', () => {
    it('has the published presets', () => {
      assert.deepEqual(crfPreset('deeplab-v2'), { iterations: 10, w1: 4, thetaAlpha: 67, thetaBeta: 3, w2: 3, thetaGamma: 1 });
      assert.deepEqual(crfPreset('deeplab-v1-largefov'), { iterations: 10, w1: 4, thetaAlpha: 121, thetaBeta: 5, w2: 3, thetaGamma: 3 });
      assert.deepEqual(crfPreset('densecrf-example'), { iterations: 5, w1: 10, thetaAlpha: 80, thetaBeta: 13, w2: 3, thetaGamma: 3 });
      assert.throws(() => crfPreset('nope'), /unknown CRF preset "nope"/);
    });

    it('applies a per-message override and refuses bad values and unknown keys', () => {
      const base = crfPreset('deeplab-v2');
      assert.deepEqual(applyCrfOverride(base, { w1: 5, thetaBeta: '4' }), { ...base, w1: 5, thetaBeta: 4 });
      assert.deepEqual(applyCrfOverride(base, undefined), base);
      assert.throws(() => applyCrfOverride(base, { theta_alpha: 3 }), /unknown key "theta_alpha"/);
      assert.throws(() => applyCrfOverride(base, { iterations: 2.5 }), /iterations must be an integer/);
      assert.throws(() => applyCrfOverride(base, { w2: -1 }), /w2 must be a finite number >= 0/);
      assert.throws(() => applyCrfOverride(base, { thetaGamma: 0 }), /thetaGamma must be a finite number > 0/);
      assert.throws(() => applyCrfOverride(base, { w1: 'x' }), /w1 must be a finite number/);
      assert.throws(() => applyCrfOverride(base, 7), /expected an object/);
    });

    it('refuses a size mismatch, a missing image, NaN/Inf scores and bad parameters with clear messages', () => {
      const { image, labels } = scene(30, 20, 4, 1);
      const map = noisyLogits(labels, 4, 2);
      const small = { ...map, width: 15, height: 40 };
      assert.throws(() => denseCrf(small, image, SMALL), /15x40 but msg.image is 30x20: upsample/);
      assert.throws(() => denseCrf(map, undefined as never, SMALL), /msg.image is missing/);
      assert.throws(() => denseCrf(map, { ...image, data: image.data.subarray(10) }, SMALL), /RawImage data must be 30x20x3 = 1800 bytes .*got a Uint8Array of length 1790/);
      const bad = { ...map, data: Float32Array.from(map.data) };
      bad.data[4 * 7 + 2] = NaN;
      assert.throws(() => denseCrf(bad, image, SMALL), /holds NaN at pixel \(7, 0\), class 2/);
      bad.data[4 * 7 + 2] = Infinity;
      assert.throws(() => denseCrf(bad, image, SMALL), /holds Infinity/);
      assert.throws(() => denseCrf(map, image, { ...SMALL, thetaAlpha: -1 }), /thetaAlpha must be a finite number > 0/);
      assert.throws(() => denseCrf({ ...map, kind: 'scores' as never }, image, SMALL), /kind must be 'logits' or 'probs'/);
    });

    it('handles one class and single-pixel images', () => {
      const { image } = scene(6, 4, 2, 3);
      const one: ScoreMap = { width: 6, height: 4, classes: 1, data: new Float32Array(24).fill(0.3), kind: 'logits', stride: 1 };
      const r = denseCrf(one, image, SMALL);
      assert.ok(r.probs.data.every((v) => Math.abs(v - 1) < 1e-6));
      const px = denseCrf({ width: 1, height: 1, classes: 3, data: new Float32Array([0.2, 0.5, 0.3]), kind: 'probs', stride: 1 },
        { width: 1, height: 1, channels: 3, data: new Uint8Array([1, 2, 3]) }, SMALL);
      assert.equal(argmaxScoreMap(px.probs).data[0], 1);
    });
  });

  describe('in a compute worker (lib/compute/client crf)', () => {
    const pool = new WorkerPool(1);
    after(() => pool.close());

    it('returns the same probabilities as a direct call, the argmax labels, and timings', async () => {
      const direct = denseCrf(bigMap, big.image, SMALL, { threads: 1 });
      const r = await crf({ map: bigMap, image: big.image, params: SMALL }, pool);
      assert.ok(maxDiff(r.probs.data, direct.probs.data) < 1e-5);
      assert.deepEqual(r.labels.data, argmaxScoreMap(r.probs).data);
      assert.equal(r.labels.ignoreIndex, 255);
      assert.ok(r.timing.totalMs > 0);
      assert.equal(r.timing.threads, require('os').availableParallelism() > 1 ? 2 : 1, 'the worker runs its own helper thread');
      assert.equal(bigMap.data.length, 80 * 60 * 5, 'the input was copied, not moved');
    });

    it('rejects bad input with the contract message and keeps working', async () => {
      await assert.rejects(crf({ map: { ...bigMap, width: 10 }, image: big.image, params: SMALL }, pool), /ScoreMap data must hold 10x/);
      const r = await pool.run('crf.run', { map: bigMap, image: big.image, params: SMALL, labels: false });
      assert.equal(r.labels, undefined);
    });
  });
});
