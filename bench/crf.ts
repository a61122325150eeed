/**
 * Dense CRF benchmark: ms per image split into the lattice (features, lattice construction, the
 * normalisation) and the iterations (unary, mean field), on real VOC photos with three parameter
 * sets (DeepLab v2's, DeepLab v1 LargeFOV's, the densecrf reference example's).
 *
 * With --cpp <driver>, Krähenbühl's single-threaded C++ (bench/densecrf-driver.cpp, built by
 * `sh bench/build-densecrf.sh <densecrf sources>` into test-output/densecrf-driver) runs on the
 * same image, unary and parameters, interleaved with ours run by run (A B A B ...) so both see
 * the same machine load; each line gives the medians and the median of the per-pair ratios
 * (ours / C++), and how far the two Q agree (mean and max |ΔQ|, labels).
 *
 * With --baseline <dense-crf.js>, another build of this package's CRF (an earlier commit's, built
 * by `sh bench/build-crf-baseline.sh <commit>` into test-output/crf-baseline/) runs in the same
 * interleaving, for before/after figures.
 *
 * Wall times only mean something on an otherwise idle machine: the run prints the load average.
 * Unaries are synthetic (lib/crf/synthetic.ts); the time hardly depends on them, much on the
 * image (θβ = 3 splits colours finely: lattice sizes vary 5x across the VOC samples).
 *
 * Run: node dist/bench/crf.js [--cpp test-output/densecrf-driver] [--baseline <dense-crf.js>] [--threads 1,2]
 *        [--images 4] [--repeat 3] [--sets deeplab-v2,deeplab-v1-largefov,densecrf-example]
 * DEEPLAB_CRF_SIMD=0 measures the JavaScript kernels instead of WebAssembly SIMD.
 */
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { LabelMap, RawImage, ScoreMap } from '../lib/contract';
import { decodeImage } from '../lib/data/image';
import { decodeLabelImage } from '../lib/data/labels';
import { CrfResult, denseCrf } from '../lib/crf/dense-crf';
import { closeCrfHelper } from '../lib/crf/parallel';
import { CRF_PRESETS, CrfParams, CrfPresetName, isCrfPresetName } from '../lib/crf/params';
import { syntheticScores } from '../lib/crf/synthetic';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const dataDir = process.env.DEEPLAB_SHARED_DATA ?? path.join(__dirname, '..', '..', '..', 'shared', 'data');
const vocDir = path.join(dataDir, 'voc-samples');
const scratchDir = path.join(__dirname, '..', '..', 'test-output', 'crf-bench');

function cropImage(im: RawImage, w: number, h: number): RawImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(im.data.subarray(y * im.width * 3, (y * im.width + w) * 3), y * w * 3);
  return { width: w, height: h, channels: 3, data };
}

function cropLabels(l: LabelMap, w: number, h: number): LabelMap {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) data.set(l.data.subarray(y * l.width, y * l.width + w), y * w);
  return { width: w, height: h, data, ignoreIndex: l.ignoreIndex };
}

interface Case {
  label: string;
  image: RawImage;
  map: ScoreMap;
}

async function loadCase(id: string, seed: number, crop?: [number, number]): Promise<Case> {
  let image = await decodeImage(fs.readFileSync(path.join(vocDir, 'JPEGImages', `${id}.jpg`)));
  let labels = await decodeLabelImage(fs.readFileSync(path.join(vocDir, 'SegmentationClass', `${id}.png`)));
  if (crop) {
    image = cropImage(image, crop[0], crop[1]);
    labels = cropLabels(labels, crop[0], crop[1]);
  }
  const map = syntheticScores(labels, 21, { seed, cellNoise: 1.5, pixelNoise: 0.5 });
  return { label: `${id}${crop ? ' crop' : ''} ${image.width}x${image.height}`, image, map };
}

/** -log softmax(logits), the C++ reference's unary. */
function unaryOf(map: ScoreMap): Float32Array {
  const { classes: C, data } = map;
  const out = new Float32Array(data.length);
  for (let p = 0; p < data.length; p += C) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, data[p + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(data[p + c] - mx);
    const lse = mx + Math.log(s);
    for (let c = 0; c < C; c++) out[p + c] = lse - data[p + c];
  }
  return out;
}

/** The C++ driver for one case, answering one command at a time. */
class CppDriver {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterableIterator<string>;

  constructor(exe: string, c: Case, params: CrfParams, tag: string) {
    fs.mkdirSync(scratchDir, { recursive: true });
    const imagePath = path.join(scratchDir, `${tag}.rgb`);
    const unaryPath = path.join(scratchDir, `${tag}.f32`);
    fs.writeFileSync(imagePath, c.image.data);
    const u = unaryOf(c.map);
    fs.writeFileSync(unaryPath, new Uint8Array(u.buffer, u.byteOffset, u.byteLength));
    const { width: W, height: H, classes: C } = c.map;
    const p = params;
    this.proc = spawn(exe, [W, H, C, p.iterations, p.w1, p.thetaAlpha, p.thetaBeta, p.w2, p.thetaGamma, imagePath, unaryPath].map(String));
    this.proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.lines = readline.createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  private async ask(cmd: string): Promise<string> {
    this.proc.stdin.write(`${cmd}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error(`the C++ driver ended before answering "${cmd}"`);
    return r.value;
  }

  async run(): Promise<{ lattice: number; iterations: number; total: number }> {
    const [lattice, iterations] = (await this.ask('run')).split(' ').map(Number);
    return { lattice, iterations, total: lattice + iterations };
  }

  async q(n: number): Promise<Float32Array> {
    const file = path.join(scratchDir, 'q.f32');
    await this.ask(`q ${file}`);
    const b = fs.readFileSync(file);
    if (b.byteLength !== n * 4) throw new Error(`C++ Q has ${b.byteLength} bytes, expected ${n * 4}`);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }

  close(): void {
    this.proc.stdin.end('quit\n');
  }
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface Split {
  lattice: number;
  iterations: number;
  total: number;
}

const splitOf = (r: CrfResult): Split => ({ lattice: r.timing.latticeMs, iterations: r.timing.inferenceMs, total: r.timing.totalMs });
const medianSplit = (runs: Split[]): Split => ({
  lattice: median(runs.map((r) => r.lattice)),
  iterations: median(runs.map((r) => r.iterations)),
  total: median(runs.map((r) => r.total)),
});
const fmt = (s: Split): string => `${s.lattice.toFixed(0)} + ${s.iterations.toFixed(0)} = ${s.total.toFixed(0)} ms`;

function agreement(a: Float32Array, b: Float32Array, C: number): string {
  let sum = 0;
  let max = 0;
  let same = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > max) max = d;
  }
  for (let p = 0; p < a.length; p += C) {
    let la = 0;
    let lb = 0;
    for (let c = 1; c < C; c++) {
      if (a[p + c] > a[p + la]) la = c;
      if (b[p + c] > b[p + lb]) lb = c;
    }
    if (la === lb) same++;
  }
  return `mean |ΔQ| ${(sum / a.length).toExponential(1)}, max ${max.toExponential(1)}, labels ${((100 * same * C) / a.length).toFixed(2)} %`;
}

interface Summary {
  label: string;
  ours: Split;
  cpp?: Split;
  /** ours / C++, medians of the per-pair ratios. */
  ratio?: Split;
  baseline?: Split;
  /** baseline / C++. */
  baseRatio?: Split;
}

type DenseCrf = typeof denseCrf;

async function benchCase(c: Case, set: CrfPresetName, threads: number, repeat: number, cppExe: string | undefined,
  baseline: DenseCrf | undefined): Promise<Summary> {
  const params = CRF_PRESETS[set];
  const label = `${c.label}, ${set}, ${threads} thread${threads > 1 ? 's' : ''}`;
  const cpp = cppExe ? new CppDriver(cppExe, c, params, 'case') : undefined;
  try {
    const ours: Split[] = [];
    const base: Split[] = [];
    const ref: Split[] = [];
    // Warm-up: JIT, module compilation, the kept WebAssembly memory, the C++ allocator.
    let last = denseCrf(c.map, c.image, params, { threads });
    baseline?.(c.map, c.image, params, { threads });
    if (cpp) await cpp.run();
    for (let r = 0; r < repeat; r++) {
      last = denseCrf(c.map, c.image, params, { threads });
      ours.push(splitOf(last));
      if (baseline) base.push(splitOf(baseline(c.map, c.image, params, { threads })));
      if (cpp) ref.push(await cpp.run());
    }
    const points = last.timing.latticePoints.join(' + ');
    const o = medianSplit(ours);
    const b = baseline ? medianSplit(base) : undefined;
    const baseText = b ? `, baseline ${fmt(b)}` : '';
    if (!cpp) {
      console.log(`  ${label}: ours ${fmt(o)}${baseText} (lattice points ${points})`);
      return { label, ours: o, baseline: b };
    }
    const k = medianSplit(ref);
    const pairRatio = (runs: Split[], f: (s: Split) => number) => median(runs.map((s, i) => f(s) / f(ref[i])));
    const ratioOf = (runs: Split[]): Split => ({
      lattice: pairRatio(runs, (s) => s.lattice), iterations: pairRatio(runs, (s) => s.iterations), total: pairRatio(runs, (s) => s.total),
    });
    const ratio = ratioOf(ours);
    const baseRatio = b ? ratioOf(base) : undefined;
    const rtext = (r: Split) => `lattice ${r.lattice.toFixed(2)}, iterations ${r.iterations.toFixed(2)}, total ${r.total.toFixed(2)}`;
    const agree = agreement(last.probs.data, await cpp.q(c.map.data.length), c.map.classes);
    console.log(`  ${label}: ours ${fmt(o)}${baseText}, C++ ${fmt(k)}; ours/C++ ${rtext(ratio)}` +
      (baseRatio ? `; baseline/C++ ${rtext(baseRatio)}` : '') + `; lattice points ${points}; ${agree}`);
    return { label, ours: o, cpp: k, ratio, baseline: b, baseRatio };
  } finally {
    cpp?.close();
  }
}

async function main(): Promise<void> {
  const threadsList = arg('threads', '1').split(',').map(Number);
  const nImages = Number(arg('images', '4'));
  const repeat = Number(arg('repeat', '3'));
  const cppArg = arg('cpp', '');
  const cppExe = cppArg ? path.resolve(cppArg) : undefined;
  if (cppExe && !fs.existsSync(cppExe)) throw new Error(`${cppExe} does not exist: build it with sh bench/build-densecrf.sh <densecrf sources>`);
  const baseArg = arg('baseline', '');
  const baseline = baseArg ? (require(path.resolve(baseArg)) as { denseCrf: DenseCrf }).denseCrf : undefined;
  const sets = arg('sets', 'deeplab-v2,deeplab-v1-largefov,densecrf-example').split(',');
  for (const s of sets) if (!isCrfPresetName(s)) throw new Error(`unknown preset ${s}`);
  const ids = fs.readFileSync(path.join(vocDir, 'ImageSets', 'Segmentation', 'val.txt'), 'utf8').split(/\s+/).filter(Boolean);

  console.log(`dense CRF benchmark: lattice + iterations = total, medians of ${repeat} runs` +
    (cppExe ? `, interleaved with Krähenbühl's single-threaded C++ (${cppExe})` : ''));
  console.log(`${os.cpus().length} cores, load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')} at start`);
  const cases = [await loadCase(ids[0], 1, [500, 375]), ...(await Promise.all(ids.slice(0, nImages).map((id, i) => loadCase(id, i + 1))))];
  const summaries: Summary[] = [];
  for (const set of sets as CrfPresetName[]) {
    console.log(`${set}: ${JSON.stringify(CRF_PRESETS[set])}`);
    for (const t of threadsList) for (const c of cases) summaries.push(await benchCase(c, set, t, repeat, cppExe, baseline));
  }
  if (cppExe) {
    const rs = summaries.map((s) => s.ratio!);
    const range = (f: (r: Split) => number) => `${Math.min(...rs.map(f)).toFixed(2)}-${Math.max(...rs.map(f)).toFixed(2)}`;
    console.log(`ours/C++ over ${rs.length} cases: lattice ${range((r) => r.lattice)}, iterations ${range((r) => r.iterations)}, total ${range((r) => r.total)}`);
    if (baseline) {
      const bs = summaries.map((s) => s.baseRatio!);
      const brange = (f: (r: Split) => number) => `${Math.min(...bs.map(f)).toFixed(2)}-${Math.max(...bs.map(f)).toFixed(2)}`;
      console.log(`baseline/C++ over ${bs.length} cases: lattice ${brange((r) => r.lattice)}, iterations ${brange((r) => r.iterations)}, total ${brange((r) => r.total)}`);
    }
  }
  console.log(`load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')} at the end`);
  await closeCrfHelper();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
