/**
 * Training speed: images/s and the ratio of a training step to a forward pass for
 * DeepLabv3+-MobileNetV2, side by side with PyTorch on the same network and crop (a step ideally
 * costs about 3 forward passes: forward, backward to the inputs, backward to the weights).
 *
 * Forward = the training-mode forward (batch statistics, differentiable atrous convolutions),
 * without gradients. Step = Trainer.step(): data from the data thread, forward, backward, SGD
 * update. On wasm a training pass over 4 images of 321x321 exceeds the WebAssembly heap (4 GB),
 * so the batch of 8 is 2 images x iter size 4 (gradient accumulation) by default, and the
 * forward time is that of the same 8 images (4 forward passes of 2).
 *
 * PyTorch: bench/torch_train.py builds the same network (parameter counts are printed and must
 * agree) and is driven over stdin, so each round runs ours then PyTorch's (A B A B ...) and the
 * images/s ratio is taken per round: on a loaded machine the ratio holds where times do not.
 * It runs when /usr/bin/python3 has torch (BENCH_TORCH=0 skips it), on its default thread count
 * unless BENCH_TORCH_THREADS is set (wasm runs one thread).
 * Options (env): BENCH_STEPS (3), BENCH_CROP (321), BENCH_BATCH (2), BENCH_ITER (4), BENCH_WIDTH (1),
 * BENCH_VARIANT (v3plus), BENCH_BACKBONE (mobilenetv2), DEEPLAB_BACKEND (auto), BENCH_PYTHON.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import * as path from 'path';
import { performance } from 'perf_hooks';
import * as readline from 'readline';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/engine/backend';
import { normalize } from '../lib/models/preprocess';
import { BackboneName, Variant } from '../lib/models/deeplab';
import { normalizeTrainConfig } from '../lib/training/config';
import { Trainer } from '../lib/training/trainer';

const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];

/** bench/torch_train.py as a peer answering 'forward' / 'step' with the milliseconds taken. */
class TorchPeer {
  private readonly lines: AsyncIterableIterator<string>;
  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    this.lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static async start(args: (string | number)[]): Promise<{ peer: TorchPeer; info: Record<string, unknown> } | undefined> {
    const script = path.join(__dirname, '..', '..', 'bench', 'torch_train.py');
    const proc = spawn(process.env.BENCH_PYTHON ?? '/usr/bin/python3', [script, ...args.map(String)]);
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += String(d); });
    proc.on('error', () => undefined);
    const peer = new TorchPeer(proc);
    const first = await peer.lines.next();
    if (first.done) {
      console.log(`PyTorch peer did not start: ${stderr.trim().split('\n').pop() ?? 'no output'}`);
      return undefined;
    }
    return { peer, info: JSON.parse(first.value) as Record<string, unknown> };
  }

  async run(cmd: 'forward' | 'step'): Promise<number> {
    this.proc.stdin.write(`${cmd}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error('the PyTorch peer exited');
    const out = JSON.parse(r.value) as { ms?: number; error?: string };
    if (out.ms === undefined) throw new Error(`PyTorch peer: ${out.error}`);
    return out.ms;
  }

  close(): void {
    this.proc.stdin.end('quit\n');
  }
}

async function main(): Promise<void> {
  const backend = await initBackend(process.env.DEEPLAB_BACKEND);
  const steps = env('BENCH_STEPS', 3);
  const crop = env('BENCH_CROP', 321);
  const batch = env('BENCH_BATCH', 2);
  const iter = env('BENCH_ITER', 4);
  const width = env('BENCH_WIDTH', 1);
  const variant = (process.env.BENCH_VARIANT ?? 'v3plus') as Variant;
  const backbone = (process.env.BENCH_BACKBONE ?? 'mobilenetv2') as BackboneName;
  const classes = 21;
  const size = crop + 32;
  const cfg = normalizeTrainConfig({
    model: { spec: { variant, backbone, classes, width } },
    train: { kind: 'synthetic', count: 64, options: { width: size, height: size, classes: 8 } },
    cropSize: crop, batchSize: batch, iterSize: iter, maxIter: 1000, lr: 1e-4, evalEvery: 0, checkpointEvery: 0,
  });
  const t = await Trainer.create(cfg);
  const ctx = { training: true, freezeBN: false };
  const x = tf.tidy(() => normalize(tf.randomUniform([batch, crop, crop, 3], 0, 255) as tf.Tensor4D, cfg.model.preprocessing));
  // The block returns nothing: a typed array returned from tf.tidy is walked element by element (seconds).
  const forward = () => {
    for (let i = 0; i < iter; i++) tf.tidy(() => { t.model.forward(x, ctx).logits.dataSync(); });
  };
  const inference = () => {
    for (let i = 0; i < iter; i++) tf.tidy(() => { t.model.forward(x).logits.dataSync(); });
  };
  const wantTorch = process.env.BENCH_TORCH !== '0' && variant === 'v3plus' && backbone === 'mobilenetv2';
  const torchArgs: (string | number)[] = [width, crop, batch, iter, classes];
  if (process.env.BENCH_TORCH_THREADS) torchArgs.push(Number(process.env.BENCH_TORCH_THREADS));
  const torch = wantTorch ? await TorchPeer.start(torchArgs) : undefined;
  try {
    console.log(`${variant} ${backbone} width ${width}, ${t.parameterCount.toLocaleString()} parameters, crop ${crop}, ` +
      `batch ${batch * iter} (${batch} x iter size ${iter}), backend ${backend}`);
    if (torch) {
      const same = torch.info.params === t.parameterCount;
      console.log(`PyTorch ${torch.info.torch} (${torch.info.threads} thread(s)): ${Number(torch.info.params).toLocaleString()} parameters` +
        (same ? ' (the same network)' : ' -- DIFFERENT parameter count: the ratio compares different networks'));
    }
    // Warm-up: kernels, XNNPACK operators, the data thread; PyTorch's allocator.
    forward();
    await t.step();
    if (torch) {
      await torch.peer.run('forward');
      await torch.peer.run('step');
    }
    const fwd: number[] = [];
    const inf: number[] = [];
    const stp: number[] = [];
    const tFwd: number[] = [];
    const tStp: number[] = [];
    const ratio: number[] = [];
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
      if (torch) {
        tFwd.push(await torch.peer.run('forward'));
        tStp.push(await torch.peer.run('step'));
        // images/s ours over PyTorch's, this round.
        ratio.push(tStp[i] / s.stepMs);
      }
    }
    const f = median(fwd);
    const s = median(stp);
    const images = batch * iter;
    console.log(`                          ours (${backend})${torch ? '      PyTorch CPU' : ''}`);
    const row = (label: string, a: string, b?: string) => console.log(`${label.padEnd(26)}${a.padEnd(18)}${b ?? ''}`);
    row('forward (training mode)', `${f.toFixed(0)} ms`, torch ? `${median(tFwd).toFixed(0)} ms` : undefined);
    row('  inference mode', `${median(inf).toFixed(0)} ms`);
    row('training step', `${s.toFixed(0)} ms`, torch ? `${median(tStp).toFixed(0)} ms` : undefined);
    row('images/s', `${((1000 * images) / s).toFixed(2)}`, torch ? `${((1000 * images) / median(tStp)).toFixed(2)}` : undefined);
    row('step / forward', `${(s / f).toFixed(2)}`, torch ? `${(median(tStp) / median(tFwd)).toFixed(2)}` : undefined);
    console.log(`(medians of ${steps} interleaved rounds; data wait ${(wait / steps).toFixed(1)} ms per step)`);
    if (torch) {
      console.log(`images/s ours / PyTorch: ${median(ratio).toFixed(2)} (median of the per-round ratios ${ratio.map((r) => r.toFixed(2)).join(', ')}; goal >= 0.5)`);
    }
  } finally {
    torch?.peer.close();
    x.dispose();
    await t.close();
    t.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
