/**
 * Confusion-matrix accumulation speed (goal: >= 200 Mpixel/s on one core), on VOC-sized
 * label maps with 21 classes and a void border, as miou-eval runs it per message; and the
 * cost of msc-fusion, which decides what it may run on the event loop (FUSION_INLINE_LIMIT).
 */
import { performance } from 'perf_hooks';
import { LabelMap } from '../lib/contract';
import { ConfusionMatrix } from '../lib/metrics';
import { FusionOptions, fuseScoreMaps } from '../lib/fusion';
import { ScoreMap } from '../lib/contract';

function synthetic(w: number, h: number, seed: number, classes: number): { pred: LabelMap; gt: LabelMap } {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) >>> 8) / (1 << 24);
  const g = new Uint8Array(w * h);
  const p = new Uint8Array(w * h);
  // Blocky regions like real masks, void on block edges, predictions right ~80% of the time.
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const block = ((x >> 5) * 31 + (y >> 5) * 17 + seed) % classes;
      g[i] = (x & 31) === 0 || (y & 31) === 0 ? 255 : block;
      p[i] = rnd() < 0.8 ? block : Math.floor(rnd() * classes);
    }
  }
  return { pred: { width: w, height: h, data: p, ignoreIndex: 255 }, gt: { width: w, height: h, data: g, ignoreIndex: 255 } };
}

function main(): void {
  const W = 513;
  const H = 513;
  const C = 21;
  const pairs = Array.from({ length: 8 }, (_, k) => synthetic(W, H, k + 1, C));
  const cm = new ConfusionMatrix(C);
  for (let i = 0; i < 20; i++) cm.add(pairs[i % 8].pred, pairs[i % 8].gt); // warm-up (JIT)
  cm.reset();
  const rounds = 400;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) cm.add(pairs[i % 8].pred, pairs[i % 8].gt);
  const ms = performance.now() - t0;
  const mpix = (rounds * W * H) / 1e6;
  const rate = mpix / (ms / 1000);
  const r0 = performance.now();
  for (let i = 0; i < 100; i++) cm.report();
  const reportMs = (performance.now() - r0) / 100;
  console.log(`metrics: confusion accumulation ${W}x${H}, ${C} classes: ${rate.toFixed(0)} Mpixel/s (${(ms / rounds).toFixed(2)} ms per image, goal >= 200 Mpixel/s: ${rate >= 200 ? 'met' : 'NOT met'})`);
  console.log(`metrics: report from the matrix: ${reportMs.toFixed(3)} ms`);
}

function scoreMap(w: number, h: number, c: number, extra: Partial<ScoreMap>): ScoreMap {
  const d = new Float32Array(w * h * c);
  for (let i = 0; i < d.length; i++) d[i] = Math.sin(i * 0.37) * 4;
  return { width: w, height: h, classes: c, data: d, kind: 'logits', stride: 8, ...extra };
}

function fusion(): void {
  const scales = [0.5, 0.5, 1, 1, 1.5, 1.5];
  const atStride = scales.map((s, i) => scoreMap(Math.round(65 * s), Math.round(65 * s), 21, { scale: s, flipped: i % 2 === 1 }));
  const atImage = scales.map((s, i) => scoreMap(513, 513, 21, { scale: s, flipped: i % 2 === 1 }));
  const cases: [string, ScoreMap[], FusionOptions][] = [
    ['6 maps (33..98 px) to the scale-1 65x65, mean-probs', atStride, { method: 'mean-probs' }],
    ['6 maps (33..98 px) to the scale-1 65x65, max', atStride, { method: 'max' }],
    ['6 maps 513x513x21, mean-probs', atImage, { method: 'mean-probs' }],
    ['6 maps 513x513x21, max', atImage, { method: 'max' }],
  ];
  for (const [label, maps, opts] of cases) {
    fuseScoreMaps(maps, opts);
    const t0 = performance.now();
    const n = 3;
    for (let i = 0; i < n; i++) fuseScoreMaps(maps, opts);
    console.log(`fusion: ${label}: ${((performance.now() - t0) / n).toFixed(1)} ms on the calling thread`);
  }
}

main();
fusion();
