/**
 * Network-like score maps made from ground truth, for tests, demos and benchmarks of the CRF
 * without a trained model: class fractions pooled on a coarse grid (as a stride-8 network
 * sees the image), seeded Gaussian noise, bilinear upsampling to full size (blurred, blocky
 * boundaries), then per-pixel noise.
 */
import { LabelMap, ScoreMap } from '../contract';
import { resizeScoreMap } from '../ops/score-map';
import { seededRandom } from '../runtime/random';

/** Standard normal samples from a uniform source (Box-Muller). */
export function gaussianSource(rand: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

export interface SyntheticScoreOptions {
  seed?: number;
  /** Pixels per coarse cell (8 like DeepLab's output stride). */
  stride?: number;
  /** Logit given to a class covering a whole cell. */
  confidence?: number;
  /** Standard deviation of the noise per coarse cell and class. */
  cellNoise?: number;
  /** Standard deviation of the noise per pixel and class. */
  pixelNoise?: number;
  /**
   * Confusable classes: the noise goes to the classes present plus this many others picked at
   * random; the remaining classes get a low logit (-confidence). Real networks confuse a few
   * plausible classes, not all of them. Default: every class is noisy.
   */
  distractors?: number;
}

/** Logits at the labels' size; void pixels count as no class (they only dilute their cell). */
export function syntheticScores(labels: LabelMap, classes: number, opts: SyntheticScoreOptions = {}): ScoreMap {
  const { width: W, height: H, data } = labels;
  const stride = opts.stride ?? 8;
  const confidence = opts.confidence ?? 6;
  const rand = seededRandom(opts.seed ?? 1);
  const gauss = gaussianSource(rand);
  const noisy = new Uint8Array(classes).fill(1);
  if (opts.distractors !== undefined) {
    noisy.fill(0);
    for (let i = 0; i < data.length; i++) if (data[i] < classes) noisy[data[i]] = 1;
    const absent = [...noisy.keys()].filter((c) => !noisy[c]);
    for (let k = 0; k < opts.distractors && absent.length > 0; k++) noisy[absent.splice(Math.floor(rand() * absent.length), 1)[0]] = 1;
  }
  // Cell i is centred on pixel i * stride (align-corners geometry, as (513 - 1) / 8 + 1 = 65).
  const cw = Math.ceil((W - 1) / stride) + 1;
  const ch = Math.ceil((H - 1) / stride) + 1;
  const coarse = new Float32Array(cw * ch * classes);
  const counts = new Float64Array(classes);
  const r = stride / 2;
  for (let j = 0; j < ch; j++) {
    for (let i = 0; i < cw; i++) {
      counts.fill(0);
      let total = 0;
      const x0 = Math.max(0, Math.ceil(i * stride - r));
      const x1 = Math.min(W - 1, Math.floor(i * stride + r));
      const y0 = Math.max(0, Math.ceil(j * stride - r));
      const y1 = Math.min(H - 1, Math.floor(j * stride + r));
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const l = data[y * W + x];
          if (l < classes) counts[l]++;
          total++;
        }
      }
      const o = (j * cw + i) * classes;
      for (let c = 0; c < classes; c++) {
        coarse[o + c] = noisy[c] ? (total > 0 ? (confidence * counts[c]) / total : 0) + (opts.cellNoise ?? 1) * gauss() : -confidence;
      }
    }
  }
  const coarseMap: ScoreMap = { width: cw, height: ch, classes, data: coarse, kind: 'logits', stride };
  // Exact align-corners geometry needs the map to span (cw - 1) * stride + 1 pixels; crop after.
  const fullW = (cw - 1) * stride + 1;
  const fullH = (ch - 1) * stride + 1;
  const up = resizeScoreMap(coarseMap, fullW, fullH, true);
  const out = new Float32Array(W * H * classes);
  const pn = opts.pixelNoise ?? 0;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const s = (y * fullW + x) * classes;
      const o = (y * W + x) * classes;
      for (let c = 0; c < classes; c++) out[o + c] = up.data[s + c] + (pn > 0 && noisy[c] ? pn * gauss() : 0);
    }
  }
  return { width: W, height: H, classes, data: out, kind: 'logits', stride: 1 };
}
