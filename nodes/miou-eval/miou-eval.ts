/**
 * miou-eval: prediction + ground truth in; one confusion matrix accumulated over the stream;
 * per-image figures on output 1, running / final reports (with a heatmap and a table) on output 2.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, LabelMap, ScoreMap, describeValue, expectLabelMap, expectScoreMap, isLabelMap, isScoreMap } from '../../lib/contract';
import { DEFAULT_MAX_PIXELS } from '../../lib/data/image';
import { decodeLabelImage, isPng } from '../../lib/data/labels';
import { CLASS_PRESETS, classColors, classNames, isClassPresetName } from '../../lib/data/palette';
import { ConfusionMatrix, MEAN_IOU_RULES, MeanIoURule, confusionHeatmapPng, imageFigures, reportTable } from '../../lib/metrics';
import { upsample } from '../../lib/compute/client';
import { argmaxScoreMap } from '../../lib/ops/score-map';
import { checkMemory, memoryBudgetBytes } from '../../lib/runtime/memory-budget';
import { getProp, Msg, onInput, Send, setStatus } from '../_shared/node-kit';
import { boolProp, intProp, pathProp, stringProp } from '../_shared/props';

interface EvalProps {
  property?: string;
  gtProperty?: string;
  classes?: string | number;
  labels?: string;
  customNames?: string;
  ignoreIndex?: string | number;
  meanRule?: string;
  reportEvery?: string | number;
  heatmap?: boolean | string;
  /** MB; blank: DEEPLAB_MEMORY_BUDGET_MB or 512. */
  memoryBudget?: string | number;
}

const COMMANDS = ['reset', 'report'] as const;
type Command = (typeof COMMANDS)[number];

const pct = (v: number | null) => (v === null ? 'n/a' : `${(v * 100).toFixed(1)}%`);

export = function register(RED: NodeAPI): void {
  function MiouEval(this: Node, def: NodeDef & EvalProps) {
    RED.nodes.createNode(this, def);
    setup(this, def);
  }

  function setup(node: Node, def: NodeDef & EvalProps): void {
    const property = pathProp(def.property);
    const gtProperty = pathProp(def.gtProperty, 'groundTruth');
    const withHeatmap = boolProp(def.heatmap, true);
    let cm: ConfusionMatrix | undefined;
    let names: string[] = [];
    let colors = CLASS_PRESETS.voc21.colors.slice();
    let rule: MeanIoURule = 'voc';
    let ignoreIndex = 255;
    let reportEvery = 0;
    let budget = 0;
    let configError: string | undefined;
    try {
      budget = memoryBudgetBytes(def.memoryBudget);
      const labels: string = stringProp<string>(def.labels, 'voc21');
      let presetNames: readonly string[] = CLASS_PRESETS.voc21.names;
      if (labels === 'custom') {
        presetNames = String(def.customNames ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
        if (presetNames.length === 0) throw new Error('custom names: give the class names, separated by commas');
      } else if (isClassPresetName(labels)) {
        presetNames = CLASS_PRESETS[labels].names;
        colors = CLASS_PRESETS[labels].colors.slice();
      } else {
        throw new Error(`unknown label set "${labels}": expected voc21, cityscapes19, ade20k150 or custom`);
      }
      const classes = intProp(def.classes, presetNames.length, 'classes', { min: 1, max: 255 });
      ignoreIndex = intProp(def.ignoreIndex, 255, 'ignore index', { min: 0, max: 255 });
      rule = stringProp<MeanIoURule>(def.meanRule, 'voc', MEAN_IOU_RULES);
      reportEvery = intProp(def.reportEvery, 0, 'report every', { min: 0 });
      cm = new ConfusionMatrix(classes, ignoreIndex);
      names = classNames(classes, presetNames);
      colors = classColors(classes, colors);
      setStatus(node, 'idle', `${classes} classes, ready`);
    } catch (err) {
      configError = `miou-eval configuration: ${(err as Error).message}`;
      setStatus(node, 'error', configError);
    }

    const sendReport = async (send: Send, msg: Msg, reason: 'report' | 'complete' | 'periodic' | 'reset') => {
      const report = cm!.report(names, rule);
      const out: Msg = { ...msg, topic: 'miou-report', payload: report, table: reportTable(report), reason };
      if (reason === 'complete') out.complete = true;
      if (withHeatmap) out.heatmap = await confusionHeatmapPng(report.confusion, { colors });
      send([null, out]);
      return report;
    };

    const evaluate = async (msg: Msg, send: Send) => {
      if (configError) throw new Error(configError);
      const matrix = cm!;
      const payload = getProp(RED, msg, property);
      const command = commandOf(msg, payload);
      if (command === 'reset') {
        matrix.reset();
        setStatus(node, 'idle', 'reset');
        return;
      }
      if (command === 'report') {
        const r = await sendReport(send, msg, 'report');
        setStatus(node, 'ok', `mIoU ${pct(r.meanIoU)} · ${r.images} images`);
        return;
      }
      // The end-of-run message may carry a summary instead of a prediction.
      const hasPrediction = !msg.complete || isLabelMap(payload) || isScoreMap(payload);
      if (hasPrediction) {
        const prediction = readPrediction(payload, `msg.${property}`);
        const gtValue = getProp(RED, msg, gtProperty);
        if (gtValue === undefined) throw new ContractError(`msg.${gtProperty} is missing: expected the ground truth (a LabelMap, or a palette / grayscale PNG Buffer of class ids)`);
        const gt = await toGroundTruth(gtValue, `msg.${gtProperty}`, ignoreIndex, budget);
        const pred = await toPrediction(prediction, gt, ignoreIndex, budget);
        const per = matrix.add(pred, gt);
        const image = imageFigures(per, matrix.classes, names);
        const running = matrix.report(names, rule);
        const out: Msg = {
          ...msg,
          payload: {
            image,
            running: { images: running.images, meanIoU: running.meanIoU, pixelAccuracy: running.pixelAccuracy, meanClassAccuracy: running.meanClassAccuracy },
          },
        };
        send([out, null]);
        setStatus(node, 'ok', `mIoU ${pct(running.meanIoU)} · ${running.images} images`);
        if (reportEvery > 0 && running.images % reportEvery === 0 && !msg.complete) await sendReport(send, msg, 'periodic');
      }
      if (msg.complete) {
        const r = await sendReport(send, msg, 'complete');
        setStatus(node, 'ok', `final mIoU ${pct(r.meanIoU)} · ${r.images} images`);
      }
    };

    // One message at a time: a ground truth still decoding must be counted before a later
    // 'report' or 'complete' is answered.
    let chain: Promise<void> = Promise.resolve();
    onInput(node, (msg, send) => {
      const run = chain.then(() => evaluate(msg, send));
      chain = run.catch(() => undefined);
      return run;
    });
  }
  RED.nodes.registerType('miou-eval', MiouEval);
};

function commandOf(msg: Msg, payload: unknown): Command | undefined {
  const s = typeof payload === 'string' ? payload.trim().toLowerCase() : undefined;
  if (s && (COMMANDS as readonly string[]).includes(s)) return s as Command;
  if (payload === undefined || typeof payload === 'string') {
    const t = typeof msg.topic === 'string' ? msg.topic.trim().toLowerCase() : '';
    if ((COMMANDS as readonly string[]).includes(t)) return t as Command;
  }
  return undefined;
}

/** The prediction as it came: a LabelMap or a ScoreMap (any accepted form), checked. */
function readPrediction(v: unknown, what: string): LabelMap | ScoreMap {
  if (isLabelMap(v)) return expectLabelMap(v, what);
  if (isScoreMap(v)) return expectScoreMap(v, what);
  throw new ContractError(`${what}: expected the prediction as a LabelMap {width, height, data: Buffer or Uint8Array, ignoreIndex} or a ScoreMap (argmax taken), got ${describeValue(v)}`);
}

/**
 * Labels to count against the ground truth. A ScoreMap coarser than it (stride > 1: logits, or a
 * map a memory budget capped) is interpolated to the ground truth's size pixel by pixel (corners
 * aligned, as upsample by default) before the argmax, in a compute worker (12 M pixels of a
 * 4000x3000 mask are too many for the event loop); any other size mismatch is refused by the matrix.
 */
async function toPrediction(p: LabelMap | ScoreMap, gt: LabelMap, ignoreIndex: number, budget: number): Promise<LabelMap> {
  if (!('classes' in p)) return p;
  const coarser = (p.stride ?? 1) > 1 && (p.width !== gt.width || p.height !== gt.height);
  const { width, height } = coarser ? gt : p;
  checkMemory(width * height + (coarser ? p.width * p.height * p.classes * 4 : 0), budget, `the argmax at ${width}x${height}`);
  if (!coarser) return argmaxScoreMap(p, ignoreIndex);
  const { labels } = await upsample(p, width, height, true, 'labels');
  return { ...labels!, ignoreIndex };
}

/**
 * Bytes per ground-truth pixel while a mask decodes: up to 8 bytes of samples (16-bit RGBA), the
 * inflated rows and the labels.
 */
const GROUND_TRUTH_BYTES_PER_PIXEL = 18;

async function toGroundTruth(v: unknown, what: string, ignoreIndex: number, budget: number): Promise<LabelMap> {
  if (isLabelMap(v)) return expectLabelMap(v, what);
  if (Buffer.isBuffer(v)) {
    // A PNG says its size in its header: refuse before inflating anything.
    if (isPng(v) && v.length >= 24) {
      const w = v.readUInt32BE(16);
      const h = v.readUInt32BE(20);
      checkMemory(w * h * GROUND_TRUTH_BYTES_PER_PIXEL, budget, `${what}: decoding a ${w}x${h} mask`);
    }
    const maxPixels = Math.min(DEFAULT_MAX_PIXELS, Math.floor(budget / GROUND_TRUTH_BYTES_PER_PIXEL));
    try {
      return await decodeLabelImage(v, { ignoreIndex, maxPixels });
    } catch (err) {
      throw new ContractError(`${what}: ${(err as Error).message}`);
    }
  }
  throw new ContractError(`${what}: expected a LabelMap or a mask image Buffer (palette PNG read by index, grayscale PNG of class ids), got ${describeValue(v)}`);
}
