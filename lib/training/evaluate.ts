/**
 * Validation during training: each whole image (no crop) through the forward wrapper
 * (lib/inference/predict: padded to a size the network tiles exactly, logits upsampled and the
 * image region kept, as DeepLab evaluates), argmax, and the dataset's confusion matrix from
 * lib/metrics.
 */
import { ConfusionMatrix, MeanIoURule, MetricsReport } from '../metrics/confusion';
import { predictLabels } from '../inference/predict';
import { DeepLab } from '../models/deeplab';
import { Preprocessing } from '../models/preprocess';
import { SampleSource } from './data';

export interface EvalOptions {
  /** Images to evaluate (0: all). */
  limit?: number;
  rule?: MeanIoURule;
  classNames?: string[];
  /** Called after each image (progress, cooperative yielding). */
  onImage?: (done: number, total: number) => void | Promise<void>;
}

export async function evaluate(model: DeepLab, pre: Preprocessing, source: SampleSource, o: EvalOptions = {}): Promise<MetricsReport> {
  const total = o.limit && o.limit > 0 ? Math.min(o.limit, source.count) : source.count;
  const cm = new ConfusionMatrix(model.spec.classes);
  for (let i = 0; i < total; i++) {
    const s = await source.get(i);
    cm.add(predictLabels(model, pre, s.image), s.label);
    await o.onImage?.(i + 1, total);
  }
  return cm.report(o.classNames ?? [], o.rule ?? 'voc');
}
