/**
 * Where a training step's time goes: per-kernel self time split by phase (data, forward,
 * backward, accumulate, optimizer) and the time outside kernels (tape, op wrappers, JS), for
 * the network and crop of bench/train.ts. Wasm kernels are synchronous, so a timer around each
 * kernel is exact. Prints the per-step average over BENCH_STEPS steps after one warm-up step.
 * Options (env): as bench/train.ts (BENCH_STEPS 2, BENCH_CROP 129, BENCH_BATCH 8, BENCH_ITER 1,
 * BENCH_WIDTH 0.25, BENCH_VARIANT, BENCH_BACKBONE), BENCH_TOP (25 rows), BENCH_SHAPES=1 (rows per input shape).
 */
import { performance } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/engine/backend';
import { BackboneName, Variant } from '../lib/models/deeplab';
import { normalize } from '../lib/models/preprocess';
import { normalizeTrainConfig } from '../lib/training/config';
import { Trainer } from '../lib/training/trainer';
import { KernelProfile } from './kernel-profile';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);

async function main(): Promise<void> {
  const backend = await initBackend(process.env.DEEPLAB_BACKEND ?? 'wasm');
  const steps = env('BENCH_STEPS', 2);
  const crop = env('BENCH_CROP', 129);
  const batch = env('BENCH_BATCH', 8);
  const iter = env('BENCH_ITER', 1);
  const width = env('BENCH_WIDTH', 0.25);
  const variant = (process.env.BENCH_VARIANT ?? 'v3plus') as Variant;
  const backbone = (process.env.BENCH_BACKBONE ?? 'mobilenetv2') as BackboneName;
  const size = crop + 32;
  const cfg = normalizeTrainConfig({
    model: { spec: { variant, backbone, classes: 21, width } },
    train: { kind: 'synthetic', count: 64, options: { width: size, height: size, classes: 8 } },
    cropSize: crop, batchSize: batch, iterSize: iter, maxIter: 1000, lr: 1e-4, evalEvery: 0, checkpointEvery: 0,
  });
  const t = await Trainer.create(cfg);
  const prof = new KernelProfile(backend);
  prof.byShape = process.env.BENCH_SHAPES === '1';
  t.onPhase = (p) => prof.setPhase(p);
  const x = tf.tidy(() => normalize(tf.randomUniform([batch, crop, crop, 3], 0, 255) as tf.Tensor4D, cfg.model.preprocessing));
  try {
    console.log(`${variant} ${backbone} width ${width}, crop ${crop}, batch ${batch} x iter ${iter}, backend ${backend}`);
    await t.step();
    tf.tidy(() => { t.model.forward(x, { training: true, freezeBN: false }).logits.dataSync(); });
    prof.enabled = true;
    prof.reset();
    let stepMs = 0;
    for (let i = 0; i < steps; i++) stepMs += (await t.step()).stepMs;
    prof.setPhase('idle');
    console.log(`\ntraining step ${(stepMs / steps).toFixed(0)} ms (mean of ${steps})`);
    console.log(prof.report(steps, env('BENCH_TOP', 25)));
    prof.reset();
    prof.setPhase('forward');
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      for (let k = 0; k < iter; k++) tf.tidy(() => { t.model.forward(x, { training: true, freezeBN: false }).logits.dataSync(); });
    }
    const f = (performance.now() - t0) / steps;
    prof.setPhase('idle');
    console.log(`\nforward alone (training mode, no tape) ${f.toFixed(0)} ms; step/forward ${(stepMs / steps / f).toFixed(2)}`);
    console.log(prof.report(steps, 10));
  } finally {
    prof.enabled = false;
    x.dispose();
    await t.close();
    t.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
