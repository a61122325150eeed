/**
 * Inference benchmark: ms per 513x513 image for each DeepLab variant on the active backend,
 * effective GFLOP/s (2 x multiply-adds / time, multiply-adds counted from the kernels that ran),
 * then a 200-frame stream through the model cache as deeplab-infer drives it: the main event
 * loop's delay percentiles, RSS and the worker's tensor count.
 *
 *   node dist/bench/inference.js [--quick] [--frames 200]
 */
import * as tf from '@tensorflow/tfjs';
import { monitorEventLoopDelay } from 'perf_hooks';
import sharp from 'sharp';
import { initBackend } from '../lib/engine/backend';
import { DeepLab, ModelSpec } from '../lib/models/deeplab';
import { engineMemory } from '../lib/compute/client';
import { ModelCache } from '../lib/compute/model-cache';
import { toRawImage } from '../lib/data/image';
import { WorkerPool } from '../lib/compute/pool';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const framesArg = args.indexOf('--frames');
const FRAMES = framesArg >= 0 ? Number(args[framesArg + 1]) : 200;

/** Multiply-adds of the convolutions and matmuls a forward pass ran (from tf.profile). */
async function countMacs(model: DeepLab, size: number): Promise<number> {
  const info = await tf.profile(() => {
    tf.tidy(() => {
      model.forward(tf.zeros([1, size, size, 3]) as tf.Tensor4D).logits.dataSync();
    });
  });
  let macs = 0;
  for (const k of info.kernels) {
    const out = k.outputShapes[0] as number[];
    const w = k.inputShapes[1] as number[];
    if (!out || !w) continue;
    const outN = out.reduce((a, b) => a * b, 1);
    if (k.name === 'Conv2D' || k.name === 'FusedConv2D') macs += outN * w[0] * w[1] * w[2];
    else if (k.name === 'DepthwiseConv2dNative' || k.name === 'FusedDepthwiseConv2D') macs += outN * w[0] * w[1];
  }
  return macs;
}

async function timeForward(model: DeepLab, size: number, runs: number): Promise<number> {
  const x = tf.randomUniform([1, size, size, 3], -1, 1) as tf.Tensor4D;
  const once = () => tf.tidy(() => {
    model.forward(x).logits.dataSync();
  });
  once(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) once();
  x.dispose();
  return (performance.now() - t0) / runs;
}

async function variants(): Promise<void> {
  const backend = await initBackend();
  console.log(`# ms per 513x513 image, backend ${backend}, 1 thread (${quick ? 'quick: 1 run' : 'mean of 2 runs after a warm-up'})`);
  const cases: [string, Partial<ModelSpec>][] = [
    ['v1 VGG-16 LargeFOV (OS8)', { variant: 'v1' }],
    ['v2 ResNet-101 ASPP-L (OS8)', { variant: 'v2' }],
    ['v3 ResNet-101 (OS16)', { variant: 'v3', outputStride: 16 }],
    ['v3 ResNet-101 torchvision (OS8)', { variant: 'v3', layout: 'torchvision', outputStride: 8 }],
    ['v3+ ResNet-101 (OS16)', { variant: 'v3plus', backbone: 'resnet101' }],
    ['v3+ Xception-65 (OS16)', { variant: 'v3plus', backbone: 'xception65' }],
    ['v3+ MobileNetV2 (OS16)', { variant: 'v3plus', backbone: 'mobilenetv2' }],
    ['v3+ MobileNetV2 width 0.5 (demo)', { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.5 }],
  ];
  console.log('variant | params | GMACs | ms/image | GFLOP/s');
  for (const [name, spec] of cases) {
    const m = new DeepLab(spec);
    const macs = await countMacs(m, 513);
    const ms = await timeForward(m, 513, quick ? 1 : 2);
    console.log(`${name} | ${(m.paramCount() / 1e6).toFixed(2)}M | ${(macs / 1e9).toFixed(1)} | ${ms.toFixed(0)} | ${((2 * macs) / (ms * 1e6)).toFixed(1)}`);
    m.dispose();
  }
}

async function stream(): Promise<void> {
  const pool = new WorkerPool(2);
  const cache = new ModelCache(pool);
  const handle = cache.acquire({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.5 } });
  const info = await handle.ready();
  const raw = Buffer.alloc(640 * 480 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
  const jpeg = await sharp(raw, { raw: { width: 640, height: 480, channels: 3 } }).jpeg().toBuffer();
  await handle.infer(await toRawImage(jpeg), { size: 321 }); // first pass: wasm heap and caches grown
  const rssBefore = process.memoryUsage().rss;
  const h = monitorEventLoopDelay({ resolution: 1 });
  // A ticker stands in for the editor and other flows: it must keep running while frames stream.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  h.enable();
  const t0 = performance.now();
  let inFlight = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = () => {
      // Two frames in flight: decode of frame n+1 overlaps the forward pass of frame n.
      while (inFlight < 2 && done + inFlight < FRAMES) {
        inFlight++;
        toRawImage(jpeg)
          .then((img) => handle.infer(img, { size: 321 }))
          .then(() => {
            inFlight--;
            done++;
            if (done === FRAMES) resolve();
            else pump();
          }, reject);
      }
    };
    pump();
  });
  const secs = (performance.now() - t0) / 1000;
  h.disable();
  clearInterval(ticker);
  const slot = pool.workers.find((w) => w.id === cache.stats()[0].worker)!;
  const mem = await engineMemory(slot);
  console.log(`\n# stream: ${FRAMES} JPEG frames 640x480 -> deeplab v3+ MobileNetV2 x0.5 at 321, backend ${info.backend}`);
  console.log(`frames/s ${(FRAMES / secs).toFixed(2)} (${((secs * 1000) / FRAMES).toFixed(0)} ms/frame)`);
  console.log(`main event loop delay: p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms`);
  console.log(`10 ms ticker fired ${ticks} times in ${secs.toFixed(1)} s (ideal ${Math.floor(secs * 100)})`);
  // Worker threads live in this process: RSS covers the main thread and both workers.
  console.log(`process RSS before ${(rssBefore / 2 ** 20).toFixed(0)} MiB, after ${FRAMES} frames ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB (all threads); worker tensors ${mem.numTensors} (${(mem.numBytes / 2 ** 20).toFixed(1)} MiB: the model's weights)`);
  await handle.release();
  const after = await engineMemory(slot);
  console.log(`after release: worker tensors ${after.numTensors}`);
  await pool.close();
}

(async () => {
  if (!args.includes('--stream-only')) await variants();
  if (!args.includes('--variants-only')) await stream();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
