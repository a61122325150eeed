/** Small synthetic scenes for the CRF tests: coloured regions with noise, and unaries from them. */
import { LabelMap, RawImage, ScoreMap } from '../../lib/contract';
import { gaussianSource } from '../../lib/crf/synthetic';
import { seededRandom } from '../../lib/runtime/random';

export interface Scene {
  image: RawImage;
  labels: LabelMap;
}

const COLORS = [[200, 40, 40], [40, 180, 60], [50, 70, 210], [220, 210, 60], [140, 60, 160], [30, 30, 30]];

/** Regions: a background and discs/rectangles of other classes, colours from the class, plus noise. */
export function scene(width: number, height: number, classes: number, seed: number, colourNoise = 12): Scene {
  const rand = seededRandom(seed);
  const gauss = gaussianSource(rand);
  const labels = new Uint8Array(width * height);
  const shapes = Array.from({ length: 4 }, (_, i) => ({
    c: 1 + (i % (classes - 1)),
    x: rand() * width,
    y: rand() * height,
    r: (0.15 + 0.25 * rand()) * Math.min(width, height),
    disc: rand() < 0.5,
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let l = 0;
      for (const s of shapes) {
        const inside = s.disc ? (x - s.x) ** 2 + (y - s.y) ** 2 < s.r * s.r : Math.abs(x - s.x) < s.r && Math.abs(y - s.y) < s.r * 0.6;
        if (inside) l = s.c;
      }
      labels[y * width + x] = l;
    }
  }
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    const col = COLORS[labels[p] % COLORS.length];
    for (let c = 0; c < 3; c++) data[p * 3 + c] = Math.max(0, Math.min(255, Math.round(col[c] + colourNoise * gauss())));
  }
  return { image: { width, height, channels: 3, data }, labels: { width, height, data: labels, ignoreIndex: 255 } };
}

/** Logits: `confidence` for the true class, Gaussian noise on all, per pixel. */
export function noisyLogits(labels: LabelMap, classes: number, seed: number, confidence = 2, noise = 1.5): ScoreMap {
  const gauss = gaussianSource(seededRandom(seed));
  const n = labels.width * labels.height;
  const data = new Float32Array(n * classes);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < classes; c++) data[p * classes + c] = (labels.data[p] === c ? confidence : 0) + noise * gauss();
  }
  return { width: labels.width, height: labels.height, classes, data, kind: 'logits', stride: 1 };
}

export function pixelAccuracy(pred: LabelMap, gt: LabelMap): number {
  let ok = 0;
  let total = 0;
  for (let i = 0; i < gt.data.length; i++) {
    if (gt.data[i] === gt.ignoreIndex) continue;
    total++;
    if (pred.data[i] === gt.data[i]) ok++;
  }
  return ok / total;
}

/** Confusion matrix accumulated over images (rows: ground truth, columns: prediction). */
export class Confusion {
  readonly m: Float64Array;
  constructor(readonly classes: number) {
    this.m = new Float64Array(classes * classes);
  }
  add(pred: LabelMap, gt: LabelMap): void {
    for (let i = 0; i < gt.data.length; i++) {
      const g = gt.data[i];
      if (g === gt.ignoreIndex || g >= this.classes) continue;
      this.m[g * this.classes + pred.data[i]]++;
    }
  }
  accuracy(): number {
    let ok = 0;
    let total = 0;
    for (let c = 0; c < this.classes; c++) ok += this.m[c * this.classes + c];
    for (const v of this.m) total += v;
    return ok / total;
  }
  /** Mean IoU over the classes present in the ground truth or the prediction. */
  miou(): number {
    const C = this.classes;
    let sum = 0;
    let k = 0;
    for (let c = 0; c < C; c++) {
      let row = 0;
      let col = 0;
      for (let j = 0; j < C; j++) {
        row += this.m[c * C + j];
        col += this.m[j * C + c];
      }
      const tp = this.m[c * C + c];
      const union = row + col - tp;
      if (union > 0) {
        sum += tp / union;
        k++;
      }
    }
    return sum / k;
  }
}
