/**
 * Inference benchmark.
 *
 * 1. ms per image for each DeepLab variant on tfjs (the active backend, wasm here) and on ONNX
 *    Runtime (the network exported to ONNX, CPU provider, or CUDA when it loads), timed in one
 *    interleaved run (tfjs, ORT, tfjs, ORT...) so both see the same machine load, with the ratio,
 *    tfjs's effective GFLOP/s (multiply-adds counted from the kernels that ran), and the parity of
 *    the two engines' logits (max abs difference over the logits' range, argmax agreement).
 * 2. A stream through the model cache as deeplab-infer drives it, on the engine `auto` picks (or
 *    DEEPLAB_BACKEND): frames/s, the main event loop's delay percentiles, RSS and worker tensors.
 *
 *   node dist/bench/inference.js [--quick] [--frames 200] [--variants-only | --stream-only]
 *
 * Knobs (environment): BENCH_VARIANTS=v3-r101-tv,v3p-mnv2 (keys below; default all), BENCH_ITERS
 * (timed passes per engine after one warm-up each, default 2; --quick: 1), BENCH_SIZE (513),
 * DEEPLAB_ORT_THREADS (ORT's intra-op threads; default the cores divided by the pool's workers, as
 * the compute workers use), DEEPLAB_WORKERS (the stream's pool size, default 2), DEEPLAB_BACKEND.
 */
import * as os from 'os';
import * as tf from '@tensorflow/tfjs';
import { monitorEventLoopDelay } from 'perf_hooks';
import sharp from 'sharp';
import { initBackend } from '../lib/engine/backend';
import { createSession, ortAvailable, ortThreads, OrtProvider, cudaProviderInstalled } from '../lib/engine/onnxruntime';
import { DeepLab, ModelSpec } from '../lib/models/deeplab';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT } from '../lib/models/onnx/export';
import { OrtSegNet } from '../lib/inference/ort-net';
import { engineMemory } from '../lib/compute/client';
import { ModelCache } from '../lib/compute/model-cache';
import { toRawImage } from '../lib/data/image';
import { WorkerPool } from '../lib/compute/pool';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const framesArg = args.indexOf('--frames');
const FRAMES = framesArg >= 0 ? Number(args[framesArg + 1]) : 200;
const ITERS = Number(process.env.BENCH_ITERS) || (quick ? 1 : 2);
const SIZE = Number(process.env.BENCH_SIZE) || 513;
const WORKERS = Number(process.env.DEEPLAB_WORKERS) || 2;

const CASES: [string, string, Partial<ModelSpec>][] = [
  ['v1', 'v1 VGG-16 LargeFOV (OS8)', { variant: 'v1' }],
  ['v2', 'v2 ResNet-101 ASPP-L (OS8)', { variant: 'v2' }],
  ['v3-r101', 'v3 ResNet-101 (OS16)', { variant: 'v3', outputStride: 16 }],
  ['v3-r101-tv', 'v3 ResNet-101 torchvision (OS8)', { variant: 'v3', layout: 'torchvision', outputStride: 8 }],
  ['v3p-r101', 'v3+ ResNet-101 (OS16)', { variant: 'v3plus', backbone: 'resnet101' }],
  ['v3p-x65', 'v3+ Xception-65 (OS16)', { variant: 'v3plus', backbone: 'xception65' }],
  ['v3p-mnv2', 'v3+ MobileNetV2 (OS16)', { variant: 'v3plus', backbone: 'mobilenetv2' }],
  ['v3p-mnv2-x0.5', 'v3+ MobileNetV2 width 0.5 (demo)', { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.5 }],
];

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

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function parity(a: Float32Array, b: Float32Array, classes: number): { rel: number; argmax: number } {
  let maxAbs = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
    lo = Math.min(lo, a[i]);
    hi = Math.max(hi, a[i]);
  }
  let agree = 0;
  const n = a.length / classes;
  for (let p = 0; p < n; p++) {
    let ia = 0;
    let ib = 0;
    for (let c = 1; c < classes; c++) {
      if (a[p * classes + c] > a[p * classes + ia]) ia = c;
      if (b[p * classes + c] > b[p * classes + ib]) ib = c;
    }
    if (ia === ib) agree++;
  }
  return { rel: maxAbs / (hi - lo || 1), argmax: agree / n };
}

async function variants(): Promise<void> {
  const backend = await initBackend();
  const wanted = process.env.BENCH_VARIANTS ? process.env.BENCH_VARIANTS.split(',').map((s) => s.trim()) : CASES.map((c) => c[0]);
  const unknown = wanted.filter((w) => !CASES.some((c) => c[0] === w));
  if (unknown.length) throw new Error(`unknown BENCH_VARIANTS ${unknown.join(', ')}: expected ${CASES.map((c) => c[0]).join(', ')}`);
  const ort = ortAvailable();
  const provider: OrtProvider = cudaProviderInstalled() ? 'cuda' : 'cpu';
  const threads = ortThreads(Math.min(WORKERS, os.availableParallelism?.() ?? os.cpus().length));
  console.log(`# ms per ${SIZE}x${SIZE} image: tfjs ${backend} (1 thread) vs ONNX Runtime ${ort ? `(${provider}, ${threads} intra-op thread(s))` : '(not installed)'}; ` +
    `interleaved A B A B, median of ${ITERS} timed pass(es) each after a warm-up; ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)}`);
  console.log('variant | params | GMACs | tfjs ms | ORT ms | tfjs / ORT | tfjs GFLOP/s | ORT max abs / range | argmax agreement');
  const exporter = ort ? { exportOnnx, ONNX_INPUT, ONNX_OUTPUT } : undefined;
  for (const [key, name, spec] of CASES.filter((c) => wanted.includes(c[0]))) {
    const m = new DeepLab(spec);
    const macs = await countMacs(m, SIZE);
    const x = tf.randomUniform([1, SIZE, SIZE, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
    let net: OrtSegNet | undefined;
    if (exporter) {
      let actual = provider;
      let session;
      try {
        session = await createSession(exporter.exportOnnx(m), { provider, threads });
      } catch {
        actual = 'cpu';
        session = await createSession(exporter.exportOnnx(m), { provider: 'cpu', threads });
      }
      net = new OrtSegNet(session, {
        input: exporter.ONNX_INPUT, inputType: 'float32', layout: 'nhwc', batch: null, height: null, width: null,
        output: exporter.ONNX_OUTPUT, outputKind: 'logits', trimmed: [], metadata: {}, ours: true, params: 0,
      }, actual, { normalize: (r) => r, padValue: 0, logitStride: m.logitStride, planStride: m.spec.outputStride, alignCorners: true });
    }
    const tfjsOnce = (): Float32Array => tf.tidy(() => m.forward(x).logits.dataSync() as Float32Array);
    const ortOnce = async (): Promise<Float32Array> => {
      const y = await net!.forward(x);
      const d = y.dataSync() as Float32Array;
      y.dispose();
      return d;
    };
    const ref = tfjsOnce(); // warm-ups
    const got = net ? await ortOnce() : undefined;
    const tfjsMs: number[] = [];
    const ortMs: number[] = [];
    for (let i = 0; i < ITERS; i++) {
      let t0 = performance.now();
      tfjsOnce();
      tfjsMs.push(performance.now() - t0);
      if (net) {
        t0 = performance.now();
        await ortOnce();
        ortMs.push(performance.now() - t0);
      }
    }
    const a = median(tfjsMs);
    const b = net ? median(ortMs) : NaN;
    const p = got ? parity(ref, got, m.spec.classes) : undefined;
    console.log(`${name} [${key}] | ${(m.paramCount() / 1e6).toFixed(2)}M | ${(macs / 1e9).toFixed(1)} | ${a.toFixed(0)} | ${net ? b.toFixed(0) : '-'} | ${net ? (a / b).toFixed(2) : '-'} | ` +
      `${((2 * macs) / (a * 1e6)).toFixed(1)} | ${p ? p.rel.toExponential(1) : '-'} | ${p ? `${(100 * p.argmax).toFixed(2)} %` : '-'}`);
    x.dispose();
    await net?.release();
    m.dispose();
  }
}

async function stream(): Promise<void> {
  const pool = new WorkerPool(WORKERS);
  const cache = new ModelCache(pool);
  const handle = cache.acquire({ spec: { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.5 } });
  const info = await handle.ready();
  const raw = Buffer.alloc(640 * 480 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
  const jpeg = await sharp(raw, { raw: { width: 640, height: 480, channels: 3 } }).jpeg().toBuffer();
  await handle.infer(await toRawImage(jpeg), { size: 321 }); // first pass: heaps and caches grown
  const rssBefore = process.memoryUsage().rss;
  const h = monitorEventLoopDelay({ resolution: 1 });
  // A ticker stands in for the editor and other flows: it must keep running while frames stream.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  h.enable();
  const t0 = performance.now();
  let inFlight = 0;
  let done = 0;
  const rssAt: number[] = [];
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
            if (done % Math.max(1, Math.floor(FRAMES / 4)) === 0) rssAt.push(process.memoryUsage().rss);
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
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  console.log(`\n# stream: ${FRAMES} JPEG frames 640x480 -> deeplab v3+ MobileNetV2 x0.5 at 321, engine ${info.backend}, ${WORKERS} worker(s)` +
    `${info.engine === 'onnxruntime' ? `, ${ortThreads(WORKERS)} ORT thread(s) per worker` : ''}`);
  console.log(`frames/s ${(FRAMES / secs).toFixed(2)} (${((secs * 1000) / FRAMES).toFixed(0)} ms/frame)`);
  console.log(`main event loop delay: p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms`);
  console.log(`10 ms ticker fired ${ticks} times in ${secs.toFixed(1)} s (ideal ${Math.floor(secs * 100)})`);
  // Worker threads live in this process: RSS covers the main thread and both workers.
  console.log(`process RSS (all threads) ${mib(rssBefore)} MiB after the first frame; at each quarter of the stream ${rssAt.map(mib).join(', ')} MiB; ` +
    `worker tensors ${mem.numTensors} (${(mem.numBytes / 2 ** 20).toFixed(1)} MiB: the model's weights)`);
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
