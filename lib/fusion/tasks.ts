/** Worker task: score-map fusion of large maps (image-size bases) off the event loop. */
import { ScoreMap } from '../contract';
import { registerTasks } from '../worker/tasks';
import { FusionOptions, fuseScoreMaps } from './msc-fusion';

registerTasks({
  'fusion.run': (args: { maps: ScoreMap[]; options: FusionOptions }) => {
    const result = fuseScoreMaps(args.maps, args.options);
    return { result, transfer: [result.data.buffer as ArrayBuffer] };
  },
});
