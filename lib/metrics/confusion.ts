/**
 * Segmentation metrics from a confusion matrix accumulated over a whole data set.
 *
 * Rows are ground-truth classes, columns predicted classes, plus one extra column for
 * pixels predicted as void (the ignore index): those count as misses of the true class
 * (a false negative) and as nobody's false positive. Ground-truth void pixels are skipped.
 *
 * Mean IoU rules (IoU_c = TP / (TP + FP + FN), the union of class c in GT and prediction):
 * - 'voc' (default): the PASCAL VOC devkit's rule, the mean over ALL classes. The devkit
 *   divides 0 by 0 for a class absent from both ground truth and prediction and its mean
 *   becomes NaN; here such a class counts as IoU 0 so the figure stays defined. On a data
 *   set where every class occurs (VOC val) the two agree exactly.
 * - 'present': mean over the classes whose union is non-empty (present in the ground truth
 *   or the prediction), i.e. nanmean, as mmsegmentation, TF's mean_iou and most PyTorch code.
 * Per-class IoU of a class with an empty union is reported as null (undefined, not 0).
 */
import { ContractError, LabelMap } from '../contract';

export type MeanIoURule = 'voc' | 'present';
export const MEAN_IOU_RULES: readonly MeanIoURule[] = ['voc', 'present'];

export interface ClassFigures {
  id: number;
  name: string;
  /** TP / (TP + FP + FN); null when the class is absent from both GT and prediction. */
  iou: number | null;
  /** Recall, TP / GT pixels; null when the class has no GT pixels. */
  accuracy: number | null;
  /** TP / predicted pixels; null when never predicted. */
  precision: number | null;
  gtPixels: number;
  predPixels: number;
  truePositives: number;
}

export interface MetricsReport {
  classes: number;
  images: number;
  /** Ground-truth pixels counted (void excluded). */
  pixels: number;
  /** Ground-truth void pixels skipped. */
  ignoredPixels: number;
  /** Valid ground-truth pixels predicted as void (counted as wrong). */
  voidPredictions: number;
  pixelAccuracy: number | null;
  /** Mean of per-class accuracy over the classes present in the ground truth. */
  meanClassAccuracy: number | null;
  meanIoU: number | null;
  meanIoURule: MeanIoURule;
  /** Both rules, for comparison with either kind of published figure. */
  meanIoUVoc: number | null;
  meanIoUPresent: number | null;
  /** Sum over classes of (GT pixel share) x IoU. */
  frequencyWeightedIoU: number | null;
  perClass: ClassFigures[];
  /** classes x classes counts, rows = ground truth, columns = prediction. */
  confusion: number[][];
}

/** Accumulates a (classes) x (classes + 1) count matrix; integers in Float64 stay exact to 2^53. */
export class ConfusionMatrix {
  readonly counts: Float64Array;
  images = 0;
  ignoredPixels = 0;
  /** (gt << 8 | pred) -> cell index; -1: GT void (skip), -2: a label out of range (an error). */
  private readonly cellOf = new Int32Array(65536);
  private readonly scratch: Uint32Array;
  private readonly lanes: Uint32Array;

  constructor(readonly classes: number, readonly ignoreIndex = 255) {
    if (!Number.isInteger(classes) || classes < 1 || classes > 255) throw new Error(`classes must be an integer in 1..255, got ${classes}`);
    if (!Number.isInteger(ignoreIndex) || ignoreIndex < 0 || ignoreIndex > 255) throw new Error(`ignore index must be an integer in 0..255, got ${ignoreIndex}`);
    if (ignoreIndex < classes) throw new Error(`ignore index ${ignoreIndex} is a class id (classes 0..${classes - 1})`);
    this.counts = new Float64Array(classes * (classes + 1));
    this.scratch = new Uint32Array(classes * (classes + 1));
    this.lanes = new Uint32Array(4 * classes * (classes + 1));
    // One lookup per pixel for both labels keeps the inner loop to a load, a test and an increment.
    const stride = classes + 1;
    for (let g = 0; g < 256; g++) {
      for (let p = 0; p < 256; p++) {
        const col = p < classes ? p : p === ignoreIndex ? classes : -1;
        this.cellOf[(g << 8) | p] = g === ignoreIndex ? -1 : g >= classes || col < 0 ? -2 : g * stride + col;
      }
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.images = 0;
    this.ignoredPixels = 0;
  }

  /**
   * Counts one image; returns that image's own matrix (same layout, counts as a Uint32Array view
   * valid until the next call). Nothing is added when the image is refused.
   */
  add(pred: LabelMap, gt: LabelMap): Uint32Array {
    if (pred.width !== gt.width || pred.height !== gt.height) {
      throw new ContractError(`prediction is ${pred.width}x${pred.height} but the ground truth is ${gt.width}x${gt.height}: upsample the prediction to the image size before evaluating`);
    }
    const m = this.scratch;
    const p = pred.data;
    const g = gt.data;
    const cellOf = this.cellOf;
    const n = g.length;
    const cells = m.length;
    const h = this.lanes;
    h.fill(0);
    let ignored = 0;
    // Four interleaved histograms: neighbouring pixels mostly hit the same cell, and four
    // independent counters avoid waiting on the previous increment of that cell.
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const k0 = cellOf[(g[i] << 8) | p[i]];
      const k1 = cellOf[(g[i + 1] << 8) | p[i + 1]];
      const k2 = cellOf[(g[i + 2] << 8) | p[i + 2]];
      const k3 = cellOf[(g[i + 3] << 8) | p[i + 3]];
      if ((k0 | k1 | k2 | k3) >= 0) {
        h[k0]++;
        h[cells + k1]++;
        h[2 * cells + k2]++;
        h[3 * cells + k3]++;
        continue;
      }
      for (let j = i; j < i + 4; j++) {
        const k = cellOf[(g[j] << 8) | p[j]];
        if (k >= 0) h[k]++;
        else if (k === -1) ignored++;
        else this.badLabel(pred, gt, j);
      }
    }
    for (; i < n; i++) {
      const k = cellOf[(g[i] << 8) | p[i]];
      if (k >= 0) h[k]++;
      else if (k === -1) ignored++;
      else this.badLabel(pred, gt, i);
    }
    for (let k = 0; k < cells; k++) m[k] = h[k] + h[cells + k] + h[2 * cells + k] + h[3 * cells + k];
    for (let k = 0; k < m.length; k++) this.counts[k] += m[k];
    this.ignoredPixels += ignored;
    this.images++;
    return m;
  }

  private badLabel(pred: LabelMap, gt: LabelMap, i: number): never {
    const at = `at pixel (${i % gt.width}, ${Math.floor(i / gt.width)})`;
    if (gt.data[i] >= this.classes) {
      throw new ContractError(`ground truth holds label ${gt.data[i]} ${at}; expected class ids 0..${this.classes - 1} or ${this.ignoreIndex} (void)`);
    }
    throw new ContractError(`prediction holds label ${pred.data[i]} ${at}; expected class ids 0..${this.classes - 1}: does the model's class count match the evaluator's?`);
  }

  /** Adds another matrix's counts (parallel evaluation, merging shards). */
  merge(other: ConfusionMatrix): void {
    if (other.classes !== this.classes) throw new Error(`cannot merge a ${other.classes}-class matrix into a ${this.classes}-class one`);
    for (let k = 0; k < this.counts.length; k++) this.counts[k] += other.counts[k];
    this.images += other.images;
    this.ignoredPixels += other.ignoredPixels;
  }

  report(names: readonly string[] = [], rule: MeanIoURule = 'voc'): MetricsReport {
    return computeMetrics(this.counts, this.classes, names, rule, { images: this.images, ignoredPixels: this.ignoredPixels });
  }
}

const div = (a: number, b: number): number | null => (b > 0 ? a / b : null);

/** Metrics from a classes x (classes + 1) count matrix (rows GT, last column = predicted void). */
export function computeMetrics(
  counts: ArrayLike<number>, classes: number, names: readonly string[] = [], rule: MeanIoURule = 'voc',
  extra: { images?: number; ignoredPixels?: number } = {},
): MetricsReport {
  const C = classes;
  const S = C + 1;
  if (counts.length !== C * S) throw new Error(`count matrix of length ${counts.length} is not ${C} x ${S}`);
  const gt = new Float64Array(C);
  const pr = new Float64Array(C);
  let total = 0;
  let trace = 0;
  let voidPred = 0;
  for (let r = 0; r < C; r++) {
    for (let c = 0; c < S; c++) {
      const v = counts[r * S + c];
      gt[r] += v;
      if (c < C) pr[c] += v;
      else voidPred += v;
    }
    trace += counts[r * S + r];
    total += gt[r];
  }
  const perClass: ClassFigures[] = [];
  let iouSum = 0;
  let iouPresent = 0;
  let accSum = 0;
  let accN = 0;
  let fw = 0;
  for (let c = 0; c < C; c++) {
    const tp = counts[c * S + c];
    const union = gt[c] + pr[c] - tp;
    const iou = div(tp, union);
    const accuracy = div(tp, gt[c]);
    if (iou !== null) {
      iouSum += iou;
      iouPresent++;
    }
    if (accuracy !== null) {
      accSum += accuracy;
      accN++;
    }
    if (iou !== null && total > 0) fw += (gt[c] / total) * iou;
    perClass.push({ id: c, name: names[c] ?? `class ${c}`, iou, accuracy, precision: div(tp, pr[c]), gtPixels: gt[c], predPixels: pr[c], truePositives: tp });
  }
  const any = total > 0 || iouPresent > 0;
  const meanIoUVoc = any ? iouSum / C : null;
  const meanIoUPresent = iouPresent > 0 ? iouSum / iouPresent : null;
  const confusion: number[][] = [];
  for (let r = 0; r < C; r++) confusion.push(Array.from({ length: C }, (_, c) => counts[r * S + c]));
  return {
    classes: C,
    images: extra.images ?? 0,
    pixels: total,
    ignoredPixels: extra.ignoredPixels ?? 0,
    voidPredictions: voidPred,
    pixelAccuracy: div(trace, total),
    meanClassAccuracy: accN > 0 ? accSum / accN : null,
    meanIoU: rule === 'voc' ? meanIoUVoc : meanIoUPresent,
    meanIoURule: rule,
    meanIoUVoc,
    meanIoUPresent,
    frequencyWeightedIoU: total > 0 ? fw : null,
    perClass,
    confusion,
  };
}

/** Figures of one image from its own count matrix (the 'present' rule: one image rarely holds every class). */
export function imageFigures(counts: ArrayLike<number>, classes: number, names: readonly string[] = []): {
  pixelAccuracy: number | null; meanIoU: number | null; classIoU: Record<string, number>;
} {
  const r = computeMetrics(counts, classes, names, 'present');
  const classIoU: Record<string, number> = {};
  for (const c of r.perClass) if (c.iou !== null) classIoU[c.name] = c.iou;
  return { pixelAccuracy: r.pixelAccuracy, meanIoU: r.meanIoUPresent, classIoU };
}

/** Rows for a dashboard table: percentages rounded to 0.01, null where undefined. */
export function reportTable(report: MetricsReport): { id: number; class: string; iou: number | null; accuracy: number | null; precision: number | null; gtPixels: number; predPixels: number }[] {
  const pct = (v: number | null) => (v === null ? null : Math.round(v * 10000) / 100);
  return report.perClass.map((c) => ({
    id: c.id, class: c.name, iou: pct(c.iou), accuracy: pct(c.accuracy), precision: pct(c.precision), gtPixels: c.gtPixels, predPixels: c.predPixels,
  }));
}
