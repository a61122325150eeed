/**
 * "Learn the CRF next" (DeepLab v1/v2): a grid search of the dense CRF's appearance kernel on a
 * validation subset, keeping the parameters with the best mIoU. The papers' ranges: w1 in 3..6,
 * θα in 30..100 (step 10), θβ in 3..6, with w2 and θγ fixed (3 and 3 here, as in DeepLab's
 * search). The network runs once per image; each grid point then costs one CRF per image.
 */
import { LabelMap, RawImage, ScoreMap } from '../contract';
import { denseCrf } from '../crf/dense-crf';
import { CrfParams, validateCrfParams } from '../crf/params';
import { ConfusionMatrix, MeanIoURule } from '../metrics/confusion';
import { argmaxScoreMap } from '../ops/score-map';

export interface CrfGrid {
  w1: number[];
  thetaAlpha: number[];
  thetaBeta: number[];
  /** Fixed during the search. */
  w2: number;
  thetaGamma: number;
  iterations: number;
}

const range = (from: number, to: number, step: number): number[] => {
  const out: number[] = [];
  for (let v = from; v <= to + 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
};

/** The DeepLab papers' search ranges. */
export const PAPER_CRF_GRID: Readonly<CrfGrid> = Object.freeze({
  w1: range(3, 6, 1),
  thetaAlpha: range(30, 100, 10),
  thetaBeta: range(3, 6, 1),
  w2: 3,
  thetaGamma: 3,
  iterations: 10,
});

export interface CrfCase {
  image: RawImage;
  /** Network probabilities (or logits) at the image's size. */
  scores: ScoreMap;
  label: LabelMap;
}

export interface CrfTrial {
  params: CrfParams;
  meanIoU: number | null;
  pixelAccuracy: number | null;
}

export interface CrfSearchResult {
  /** The winning parameters, in the shape dense-crf accepts as msg.crf. */
  best: CrfParams;
  bestMeanIoU: number | null;
  /** mIoU of the network alone (no CRF) on the same images. */
  baselineMeanIoU: number | null;
  images: number;
  trials: CrfTrial[];
  elapsedMs: number;
}

export interface CrfSearchOptions {
  grid?: Partial<CrfGrid>;
  rule?: MeanIoURule;
  /** Threads for each CRF (default: dense-crf's choice). */
  threads?: number;
  onTrial?: (done: number, total: number, trial: CrfTrial) => void | Promise<void>;
  /** Checked between trials: true stops the search early with the best so far. */
  shouldStop?: () => boolean;
}

function checkGrid(g: CrfGrid): void {
  for (const k of ['w1', 'thetaAlpha', 'thetaBeta'] as const) {
    if (!Array.isArray(g[k]) || g[k].length === 0) throw new Error(`CRF grid: ${k} needs at least one value`);
  }
  // Validates every value once through the CRF's own rules.
  for (const w1 of g.w1) for (const ta of g.thetaAlpha) for (const tb of g.thetaBeta) {
    validateCrfParams({ iterations: g.iterations, w1, thetaAlpha: ta, thetaBeta: tb, w2: g.w2, thetaGamma: g.thetaGamma }, 'CRF grid');
  }
}

function score(cases: CrfCase[], predict: (c: CrfCase) => LabelMap, classes: number, rule: MeanIoURule): { meanIoU: number | null; pixelAccuracy: number | null } {
  const cm = new ConfusionMatrix(classes);
  for (const c of cases) cm.add(predict(c), c.label);
  const r = cm.report([], rule);
  return { meanIoU: r.meanIoU, pixelAccuracy: r.pixelAccuracy };
}

export async function crfGridSearch(cases: CrfCase[], o: CrfSearchOptions = {}): Promise<CrfSearchResult> {
  if (cases.length === 0) throw new Error('CRF search needs at least one validation image');
  const t0 = performance.now();
  const grid: CrfGrid = { ...PAPER_CRF_GRID, ...o.grid } as CrfGrid;
  checkGrid(grid);
  const classes = cases[0].scores.classes;
  const rule = o.rule ?? 'voc';
  const baseline = score(cases, (c) => argmaxScoreMap(c.scores, 255), classes, rule);
  const trials: CrfTrial[] = [];
  const total = grid.w1.length * grid.thetaAlpha.length * grid.thetaBeta.length;
  let best: CrfTrial | undefined;
  outer: for (const w1 of grid.w1) {
    for (const thetaAlpha of grid.thetaAlpha) {
      for (const thetaBeta of grid.thetaBeta) {
        if (o.shouldStop?.()) break outer;
        const params: CrfParams = { iterations: grid.iterations, w1, thetaAlpha, thetaBeta, w2: grid.w2, thetaGamma: grid.thetaGamma };
        const s = score(cases, (c) => argmaxScoreMap(denseCrf(c.scores, c.image, params, { threads: o.threads }).probs, 255), classes, rule);
        const trial: CrfTrial = { params, ...s };
        trials.push(trial);
        // Ties keep the earlier (smaller) parameters.
        if (!best || (trial.meanIoU ?? -1) > (best.meanIoU ?? -1)) best = trial;
        await o.onTrial?.(trials.length, total, trial);
      }
    }
  }
  if (!best) throw new Error('CRF search stopped before its first trial');
  return {
    best: best.params,
    bestMeanIoU: best.meanIoU,
    baselineMeanIoU: baseline.meanIoU,
    images: cases.length,
    trials,
    elapsedMs: performance.now() - t0,
  };
}
