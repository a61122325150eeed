/** Score-map post-processing as worker tasks (upsampling a 513x513x21 map is ~50 ms of compute). */
import { ScoreMap } from '../contract';
import { argmaxScoreMap, resizeScoreMap, softmaxScoreMap } from '../ops/score-map';
import { registerTasks } from '../worker/tasks';
import { transferablesOf } from '../worker/protocol';

export type UpsampleOutput = 'scores' | 'probs' | 'labels' | 'both';

export interface UpsampleArgs {
  map: ScoreMap;
  width: number;
  height: number;
  alignCorners: boolean;
  output: UpsampleOutput;
}

export function upsampleMap(a: UpsampleArgs) {
  let map = resizeScoreMap(a.map, a.width, a.height, a.alignCorners);
  if (a.output === 'probs' || a.output === 'both') map = softmaxScoreMap(map);
  const labels = a.output === 'labels' || a.output === 'both' ? argmaxScoreMap(map) : undefined;
  return { map: a.output === 'labels' ? undefined : map, labels };
}

registerTasks({
  'scoremap.upsample': (a: UpsampleArgs) => {
    const r = upsampleMap(a);
    return { result: r, transfer: transferablesOf(r.map?.data, r.labels?.data) };
  },
});
