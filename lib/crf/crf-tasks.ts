/**
 * Worker task 'crf.run': the dense CRF on a compute worker (it is synchronous and CPU-bound,
 * so it never runs on Node-RED's event loop).
 *   args:   { map: ScoreMap, image: RawImage, params: CrfParams, options?: CrfOptions, labels?: boolean }
 *   result: { probs: ScoreMap (kind 'probs', stride 1), labels?: LabelMap (argmax, ignoreIndex 255), timing }
 * The result's buffers are transferred back, not copied.
 */
import { LabelMap, RawImage, ScoreMap } from '../contract';
import { argmaxScoreMap } from '../ops/score-map';
import { registerTasks } from '../worker/tasks';
import { CrfOptions, CrfTiming, denseCrf } from './dense-crf';
import { CrfParams } from './params';

export interface CrfTaskArgs {
  map: ScoreMap;
  image: RawImage;
  params: CrfParams;
  options?: CrfOptions;
  /** Also return the argmax labels (default true). */
  labels?: boolean;
}

export interface CrfTaskResult {
  probs: ScoreMap;
  labels?: LabelMap;
  timing: CrfTiming;
}

registerTasks({
  'crf.run': (args: CrfTaskArgs) => {
    const { probs, timing } = denseCrf(args.map, args.image, args.params, args.options ?? {});
    const result: CrfTaskResult = { probs, timing };
    const transfer = [probs.data.buffer as ArrayBuffer];
    if (args.labels !== false) {
      result.labels = argmaxScoreMap(probs, 255);
      transfer.push(result.labels.data.buffer as ArrayBuffer);
    }
    return { result, transfer };
  },
});
