/**
 * Convolution training cost on the wasm backend: forward and backward time of a 3x3
 * 256->256 convolution at 33x33, batch 2 (a DeepLab ASPP / ResNet block layer), at
 * dilation 1 and 2, native kernels vs the space-to-batch training path of lib/engine/conv;
 * then the same for a 3x3 depthwise convolution (MobileNet / Xception), and wasm's own
 * Conv2DBackpropInput that lib/engine/wasm-grad-kernels replaces.
 *
 * backward = time(forward + gradients w.r.t. input and filter) - time(forward).
 *
 *   node dist/bench/conv-grad.js [--runs 5]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/engine/backend';
import { conv2d, depthwiseConv2d, ConvOptions } from '../lib/engine/conv';
import { replacedKernels } from '../lib/engine/wasm-grad-kernels';

const args = process.argv.slice(2);
const runsArg = args.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 5;

/** Median ms of `fn` (which returns the tensors to wait for), after one warm-up run. */
function timeMs(fn: () => tf.Tensor | tf.Tensor[]): number {
  const once = (): number => {
    const t0 = performance.now();
    tf.tidy(() => {
      const out = fn();
      for (const t of Array.isArray(out) ? out : [out]) t.dataSync();
    });
    return performance.now() - t0;
  };
  once();
  const times = Array.from({ length: RUNS }, once).sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

type Conv = (x: tf.Tensor4D, f: tf.Tensor4D) => tf.Tensor4D;

interface Row { label: string; fwd: number; bwd: number | string }

function measure(label: string, conv: Conv, x: tf.Tensor4D, f: tf.Tensor4D): Row {
  const fwd = timeMs(() => conv(x, f));
  const dy = tf.tidy(() => tf.randomNormal(conv(x, f).shape));
  let bwd: number | string;
  try {
    const both = timeMs(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => conv(a as tf.Tensor4D, b as tf.Tensor4D))([x, f], dy));
    bwd = Math.max(0, both - fwd);
  } catch (e) {
    bwd = `throws (${(e as Error).message.slice(0, 60)}...)`;
  }
  dy.dispose();
  return { label, fwd, bwd };
}

function print(title: string, flops: number, rows: Row[]): void {
  console.log(`\n# ${title}`);
  console.log('path | forward ms | GFLOP/s | backward ms | backward/forward');
  for (const r of rows) {
    const gf = (flops / (r.fwd * 1e6)).toFixed(1);
    const bwd = typeof r.bwd === 'number' ? r.bwd.toFixed(1) : r.bwd;
    const ratio = typeof r.bwd === 'number' ? (r.bwd / r.fwd).toFixed(2) : '-';
    console.log(`${r.label} | ${r.fwd.toFixed(1)} | ${gf} | ${bwd} | ${ratio}`);
  }
}

async function main(): Promise<void> {
  const backend = await initBackend('wasm');
  console.log(`# backend ${backend}, 1 thread, median of ${RUNS} runs after a warm-up`);
  const n = 2;
  const hw = 33;
  const c = 256;
  const x = tf.randomNormal([n, hw, hw, c]) as tf.Tensor4D;
  const f = tf.randomNormal([3, 3, c, c], 0, 0.05) as tf.Tensor4D;
  const dw = tf.randomNormal([3, 3, c, 1], 0, 0.3) as tf.Tensor4D;

  const native = (d: number): Conv => (a, b) => tf.conv2d(a, b, 1, [[0, 0], [d, d], [d, d], [0, 0]], 'NHWC', d);
  const engine = (d: number, training: boolean): Conv => (a, b) =>
    conv2d(a, b, { stride: 1, dilation: d, pad: [[d, d], [d, d]], training } as ConvOptions);
  const flops = 2 * n * hw * hw * 9 * c * c;
  print(`conv2d 3x3 ${c}->${c}, ${hw}x${hw}, batch ${n}`, flops, [
    measure('dilation 1, native (our backprop kernels)', native(1), x, f),
    measure('dilation 2, native dilated', native(2), x, f),
    measure('dilation 2, space-to-batch (training path)', engine(2, true), x, f),
  ]);

  const dnative = (d: number): Conv => (a, b) => tf.depthwiseConv2d(a, b, 1, [[0, 0], [d, d], [d, d], [0, 0]], 'NHWC', d);
  const dengine = (d: number): Conv => (a, b) =>
    depthwiseConv2d(a, b, { stride: 1, dilation: d, pad: [[d, d], [d, d]], training: true });
  print(`depthwiseConv2d 3x3, ${c} channels, ${hw}x${hw}, batch ${n}`, 2 * n * hw * hw * 9 * c, [
    measure('dilation 1, native (our backprop kernels)', dnative(1), x, dw),
    measure('dilation 2, native dilated', dnative(2), x, dw),
    measure('dilation 2, space-to-batch (training path)', dengine(2), x, dw),
  ]);

  // The input gradient alone: ours (polyphase convs) vs the wasm kernel it replaced.
  const dy = tf.randomNormal([n, hw, hw, c]) as tf.Tensor4D;
  const attrs = { strides: 1, pad: [[0, 0], [1, 1], [1, 1], [0, 0]], dataFormat: 'NHWC', inputShape: [n, hw, hw, c] };
  const ours = timeMs(() => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor);
  const old = replacedKernels.get('wasm/Conv2DBackpropInput');
  console.log(`\n# Conv2DBackpropInput, 3x3 ${c}->${c}, ${hw}x${hw}, batch ${n}`);
  console.log(`ours (polyphase XNNPACK convs): ${ours.toFixed(1)} ms`);
  if (old) {
    const theirs = timeMs(() => tf.engine().makeTensorFromTensorInfo(
      old.kernelFunc({ inputs: { dy, filter: f }, backend: tf.backend(), attrs: attrs as unknown as tf.NamedAttrMap }) as tf.TensorInfo));
    console.log(`tfjs-backend-wasm's own: ${theirs.toFixed(1)} ms (${(theirs / ours).toFixed(1)}x slower)`);
  }
  tf.dispose([x, f, dw, dy]);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
