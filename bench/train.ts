/**
 * Training speed: images/s and the ratio of a training step to a forward pass for
 * DeepLabv3+-MobileNetV2 at crop 321, batch 8 (the reference; a step ideally costs
 * about 3 forward passes: forward, backward to the inputs, backward to the weights).
 *
 * Forward = the training-mode forward (batch statistics, differentiable atrous convolutions),
 * without gradients. Step = Trainer.step(): data from the data thread, forward, backward, SGD
 * update. On wasm a training pass over 4 images of 321x321 exceeds the WebAssembly heap (4 GB),
 * so the batch of 8 is 2 images x iter size 4 (gradient accumulation) by default, and the
 * forward time is that of the same 8 images (4 forward passes of 2).
 * Options (env): BENCH_STEPS (3), BENCH_CROP (321), BENCH_BATCH (2), BENCH_ITER (4), BENCH_WIDTH (1),
 * BENCH_VARIANT (v3plus), BENCH_BACKBONE (mobilenetv2), DEEPLAB_BACKEND (auto).
 */
import { performance } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/engine/backend';
import { normalize } from '../lib/models/preprocess';
import { BackboneName, Variant } from '../lib/models/deeplab';
import { normalizeTrainConfig } from '../lib/training/config';
import { Trainer } from '../lib/training/trainer';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);

async function main(): Promise<void> {
  const backend = await initBackend(process.env.DEEPLAB_BACKEND);
  const steps = env('BENCH_STEPS', 3);
  const crop = env('BENCH_CROP', 321);
  const batch = env('BENCH_BATCH', 2);
  const iter = env('BENCH_ITER', 4);
  const width = env('BENCH_WIDTH', 1);
  const variant = (process.env.BENCH_VARIANT ?? 'v3plus') as Variant;
  const backbone = (process.env.BENCH_BACKBONE ?? 'mobilenetv2') as BackboneName;
  const size = crop + 32;
  const cfg = normalizeTrainConfig({
    model: { spec: { variant, backbone, classes: 21, width } },
    train: { kind: 'synthetic', count: 64, options: { width: size, height: size, classes: 8 } },
    cropSize: crop, batchSize: batch, iterSize: iter, maxIter: 1000, lr: 1e-4, evalEvery: 0, checkpointEvery: 0,
  });
  const t = await Trainer.create(cfg);
  const ctx = { training: true, freezeBN: false };
  const x = tf.tidy(() => normalize(tf.randomUniform([batch, crop, crop, 3], 0, 255) as tf.Tensor4D, cfg.model.preprocessing));
  const forward = () => {
    for (let i = 0; i < iter; i++) tf.tidy(() => t.model.forward(x, ctx).logits.dataSync());
  };
  const inference = () => {
    for (let i = 0; i < iter; i++) tf.tidy(() => t.model.forward(x).logits.dataSync());
  };
  try {
    console.log(`${variant} ${backbone} width ${width}, ${t.parameterCount.toLocaleString()} parameters, crop ${crop}, ` +
      `batch ${batch * iter} (${batch} x iter size ${iter}), backend ${backend}`);
    // Warm-up: kernels, XNNPACK operators, the data thread.
    forward();
    await t.step();
    const fwd: number[] = [];
    const inf: number[] = [];
    const stp: number[] = [];
    let wait = 0;
    for (let i = 0; i < steps; i++) {
      let t0 = performance.now();
      forward();
      fwd.push(performance.now() - t0);
      t0 = performance.now();
      inference();
      inf.push(performance.now() - t0);
      const s = await t.step();
      stp.push(s.stepMs);
      wait += s.dataWaitMs;
    }
    const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
    const f = median(fwd);
    const s = median(stp);
    console.log(`forward (training mode)  ${f.toFixed(0)} ms   (inference mode ${median(inf).toFixed(0)} ms), ${batch * iter} images`);
    console.log(`training step            ${s.toFixed(0)} ms   (median of ${steps}; data wait ${(wait / steps).toFixed(1)} ms per step)`);
    console.log(`images/s                 ${((1000 * batch * iter) / s).toFixed(2)}`);
    console.log(`step / forward           ${(s / f).toFixed(2)}   (ideal about 3)`);
  } finally {
    x.dispose();
    await t.close();
    t.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
