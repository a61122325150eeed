/**
 * Peak memory of the dense CRF per working pixel, the figure behind crfBytesPerPixel (the
 * dense-crf node's memory budget): each size runs in a fresh process, which reports its peak
 * RSS (getrusage maxRSS) before and after one denseCrf call on synthetic inputs.
 *
 *   node dist/bench/crf-memory.js            # 513x513 and 1000x750, 21 classes, 1 and 2 threads
 *   node dist/bench/crf-memory.js 800 600 21 2
 */
import { execFileSync } from 'child_process';
import { crfBytesPerPixel } from '../lib/crf/working-resolution';

const MB = 1024 * 1024;

function child(W: number, H: number, C: number, threads: number): void {
  const { syntheticScores } = require('../lib/crf/synthetic') as typeof import('../lib/crf/synthetic');
  const { denseCrf } = require('../lib/crf/dense-crf') as typeof import('../lib/crf/dense-crf');
  const { closeCrfHelper } = require('../lib/crf/parallel') as typeof import('../lib/crf/parallel');
  const { CRF_PRESETS } = require('../lib/crf/params') as typeof import('../lib/crf/params');
  const image = { width: W, height: H, channels: 3 as const, data: Buffer.alloc(W * H * 3) };
  for (let i = 0; i < image.data.length; i++) image.data[i] = ((i * 2654435761) >>> 24) & 0xff;
  const labels = { width: W, height: H, data: new Uint8Array(W * H).map((_, i) => ((i % W) >> 6) % C), ignoreIndex: 255 };
  const map = syntheticScores(labels, C, { seed: 1 });
  // Peak so far (inputs built, code loaded), then the peak the CRF adds.
  const before = process.resourceUsage().maxRSS * 1024;
  denseCrf(map, image, CRF_PRESETS['deeplab-v2'], { threads });
  const after = process.resourceUsage().maxRSS * 1024;
  void closeCrfHelper();
  process.stdout.write(JSON.stringify({ before, after }));
}

function main(): void {
  const args = process.argv.slice(2).map(Number);
  if (process.argv[2] === '--child') {
    const [W, H, C, T] = process.argv.slice(3).map(Number);
    child(W, H, C, T);
    return;
  }
  const cases: [number, number, number, number][] = args.length === 4 ? [args as [number, number, number, number]] :
    [[513, 513, 21, 1], [513, 513, 21, 2], [1000, 750, 21, 2], [513, 513, 5, 2]];
  console.log('CRF peak memory above its inputs (fresh process per row)');
  console.log('size        classes threads   peak +MB   bytes/px/class   estimate MB (crfBytesPerPixel)');
  for (const [W, H, C, T] of cases) {
    const out = execFileSync(process.execPath, [__filename, '--child', String(W), String(H), String(C), String(T)], { encoding: 'utf8' });
    const { before, after } = JSON.parse(out) as { before: number; after: number };
    const added = after - before;
    const n = W * H;
    console.log(`${`${W}x${H}`.padEnd(11)} ${String(C).padStart(7)} ${String(T).padStart(7)} ${(added / MB).toFixed(0).padStart(10)} ${(added / n / C).toFixed(1).padStart(16)} ${((crfBytesPerPixel(C) * n) / MB).toFixed(0).padStart(14)}`);
  }
}

main();
