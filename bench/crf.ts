/**
 * Dense CRF benchmark: ms per image (lattice construction included, and shown apart),
 * throughput in Mpixel-class-iterations per second, and the ratio to Krähenbühl's
 * single-threaded C++ reference measured on this kind of machine:
 *   500x375, 21 classes, the reference example's kernels, 10 iterations: ~0.89 s (0.13 s lattice)
 *   513x513 VOC photos, 21 classes, DeepLab v2 preset (10 iterations): ~2.2 s
 * Wall times only mean something on an otherwise idle machine: the run prints the load average
 * and the cores this process actually got (CPU time / wall time), and CPU-ms per image.
 * Unaries are synthetic (lib/crf/synthetic.ts); the time hardly depends on them, much on the
 * image (θβ = 3 splits colours finely: lattice sizes vary 5x across the VOC samples).
 * Run: node dist/bench/crf.js [--threads 1,2] [--images 4] [--repeat 3]
 * DEEPLAB_CRF_SIMD=0 measures the JavaScript kernels instead of WebAssembly SIMD.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { LabelMap, RawImage, ScoreMap } from '../lib/contract';
import { decodeImage, resizeImage } from '../lib/data/image';
import { decodeLabelImage } from '../lib/data/labels';
import { CrfResult, denseCrf } from '../lib/crf/dense-crf';
import { closeCrfHelper } from '../lib/crf/parallel';
import { CRF_PRESETS, CrfParams } from '../lib/crf/params';
import { syntheticScores } from '../lib/crf/synthetic';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const dataDir = process.env.DEEPLAB_SHARED_DATA ?? path.join(__dirname, '..', '..', '..', 'shared', 'data');
const vocDir = path.join(dataDir, 'voc-samples');

function nearestLabels(l: LabelMap, w: number, h: number): LabelMap {
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(l.height - 1, Math.floor(((y + 0.5) * l.height) / h));
    for (let x = 0; x < w; x++) out[y * w + x] = l.data[sy * l.width + Math.min(l.width - 1, Math.floor(((x + 0.5) * l.width) / w))];
  }
  return { width: w, height: h, data: out, ignoreIndex: l.ignoreIndex };
}

async function loadSample(id: string, size?: [number, number]): Promise<{ image: RawImage; labels: LabelMap }> {
  let image = await decodeImage(fs.readFileSync(path.join(vocDir, 'JPEGImages', `${id}.jpg`)));
  let labels = await decodeLabelImage(fs.readFileSync(path.join(vocDir, 'SegmentationClass', `${id}.png`)));
  if (size) {
    image = await resizeImage(image, size[0], size[1]);
    labels = nearestLabels(labels, size[0], size[1]);
  }
  return { image, labels };
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Row {
  total: number;
  /** CPU time of this process over wall time (2 = both cores busy all along). */
  cores: number;
  lattice: number;
  mpci: number;
  points: [number, number];
}

function measure(map: ScoreMap, image: RawImage, params: CrfParams, threads: number, repeat: number): Row {
  const runs: CrfResult[] = [];
  denseCrf(map, image, params, { threads }); // warm-up: JIT and helper start
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let r = 0; r < repeat; r++) runs.push(denseCrf(map, image, params, { threads }));
  const cpu = process.cpuUsage(cpu0);
  const cores = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
  const total = median(runs.map((r) => r.timing.totalMs));
  const lattice = median(runs.map((r) => r.timing.latticeMs));
  const mpci = (map.width * map.height * map.classes * params.iterations) / (total / 1000) / 1e6;
  return { total, cores, lattice, mpci, points: runs[0].timing.latticePoints };
}

function report(label: string, row: Row, refMs: number): void {
  console.log(`  ${label}: ${row.total.toFixed(0)} ms/image (lattice ${row.lattice.toFixed(0)} ms; ${(row.total * row.cores).toFixed(0)} CPU-ms), ` +
    `${row.mpci.toFixed(1)} Mpixel-class-iter/s, ${row.cores.toFixed(2)} cores busy, lattice points ${row.points.join(' + ')}, ` +
    `${(row.total / refMs).toFixed(2)}x the C++ time (${(refMs / row.total).toFixed(2)}x as fast)`);
}

async function main(): Promise<void> {
  const threadsList = arg('threads', '1,2').split(',').map(Number);
  const nImages = Number(arg('images', '4'));
  const repeat = Number(arg('repeat', '3'));
  const ids = fs.readFileSync(path.join(vocDir, 'ImageSets', 'Segmentation', 'val.txt'), 'utf8').split(/\s+/).filter(Boolean);

  console.log('dense CRF benchmark (times are medians; ratios against Krähenbühl\'s single-threaded C++)');
  // Wall times need an otherwise idle machine: say how busy it was.
  console.log(`${os.cpus().length} cores, load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')} at start`);
  const refExample: CrfParams = { ...CRF_PRESETS['densecrf-example'], iterations: 10 };
  {
    const { image, labels } = await loadSample(ids[0], [500, 375]);
    const map = syntheticScores(labels, 21, { seed: 1, cellNoise: 1.5, pixelNoise: 0.5 });
    console.log(`500x375 (${ids[0]} resized), 21 classes, reference example kernels, 10 iterations; C++: 890 ms (130 ms lattice)`);
    for (const t of threadsList) report(`${t} thread${t > 1 ? 's' : ' '}`, measure(map, image, refExample, t, repeat), 890);
  }
  {
    const params = CRF_PRESETS['deeplab-v2'];
    const chosen = ids.slice(0, nImages);
    console.log(`513x513 VOC (${chosen.join(', ')}), 21 classes, DeepLab v2 preset (10 iterations); C++: 2200 ms`);
    const samples = await Promise.all(chosen.map((id) => loadSample(id)));
    for (const t of threadsList) {
      const rows = samples.map(({ image, labels }, i) => measure(syntheticScores(labels, 21, { seed: i + 1, cellNoise: 1.5, pixelNoise: 0.5 }), image, params, t, repeat));
      const mean = (f: (r: Row) => number) => rows.reduce((a, r) => a + f(r), 0) / rows.length;
      const avg: Row = { total: mean((r) => r.total), cores: mean((r) => r.cores), lattice: mean((r) => r.lattice), mpci: mean((r) => r.mpci), points: [Math.round(mean((r) => r.points[0])), Math.round(mean((r) => r.points[1]))] };
      report(`${t} thread${t > 1 ? 's' : ' '} (mean of ${rows.length})`, avg, 2200);
    }
  }
  console.log(`load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')} at the end`);
  await closeCrfHelper();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
