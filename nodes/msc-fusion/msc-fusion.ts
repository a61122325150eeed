/** msc-fusion: the score maps of one image (scales, flipped copies) fused into one ScoreMap. */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, ScoreMap, toWireScoreMap } from '../../lib/contract';
import {
  FUSION_BASES, FUSION_INLINE_LIMIT, FUSION_METHODS, FusionBase, FusionMethod, FusionOptions, fuseScoreMaps, fusionWork, planFusion, validateFusionInput,
} from '../../lib/fusion';
import { fuse } from '../../lib/compute/client';
import { formatBytes, memoryBudgetBytes } from '../../lib/runtime/memory-budget';
import { getProp, Msg, onInput, readImage, setProp, setStatus } from '../_shared/node-kit';
import { boolProp, pathProp, stringProp } from '../_shared/props';

interface FusionProps {
  method?: string;
  base?: string;
  alignCorners?: boolean | string;
  property?: string;
  imageProperty?: string;
  /** MB; blank: DEEPLAB_MEMORY_BUDGET_MB or 512. */
  memoryBudget?: string | number;
}

export = function register(RED: NodeAPI): void {
  function MscFusion(this: Node, def: NodeDef & FusionProps) {
    RED.nodes.createNode(this, def);
    setup(this, def);
  }

  function setup(node: Node, def: NodeDef & FusionProps): void {
    const property = pathProp(def.property);
    const imageProperty = pathProp(def.imageProperty, 'image');
    const alignCorners = boolProp(def.alignCorners, true);
    let method: FusionMethod = 'mean-probs';
    let base: FusionBase = 'scale1';
    let budget = 0;
    let configError: string | undefined;
    try {
      method = stringProp<FusionMethod>(def.method, 'mean-probs', FUSION_METHODS);
      base = stringProp<FusionBase>(def.base, 'scale1', FUSION_BASES);
      budget = memoryBudgetBytes(def.memoryBudget);
      setStatus(node, 'idle', `${method}, ready`);
    } catch (err) {
      configError = `msc-fusion configuration: ${(err as Error).message}`;
      setStatus(node, 'error', configError);
    }

    onInput(node, async (msg: Msg, send) => {
      if (configError) throw new Error(configError);
      const value = getProp(RED, msg, property);
      if (value === undefined) throw new ContractError(`msg.${property} is missing: expected the array of ScoreMaps of one image from deeplab-infer (scales / flip)`);
      const maps = validateFusionInput(value, `msg.${property}`);
      const options: FusionOptions = { method, base, alignCorners };
      if (base === 'image') {
        const img = getProp(RED, msg, imageProperty);
        if (img === undefined) throw new ContractError(`fusion to the image size needs msg.${imageProperty} as a RawImage {width, height, channels: 3, data}; got nothing: keep the image from deeplab-infer on the message`);
        const { width, height } = readImage(RED, msg, imageProperty);
        options.width = width;
        options.height = height;
      }
      // Before anything is allocated: the output size that fits the budget, or a refusal.
      const plan = planFusion(maps, options, budget);
      options.target = plan.target;
      const t0 = Date.now();
      let fused: ScoreMap;
      if (fusionWork(maps, options) <= FUSION_INLINE_LIMIT) {
        fused = fuseScoreMaps(maps, options);
      } else {
        setStatus(node, 'busy', `fusing ${maps.length} maps`);
        fused = await fuse(maps, options);
      }
      setProp(RED, msg, property, toWireScoreMap(fused));
      const ms = Date.now() - t0;
      const n = `${maps.length} map${maps.length > 1 ? 's' : ''}`;
      if (plan.cappedFrom) setStatus(node, 'warn', `${n} -> ${fused.width}x${fused.height} (capped: budget ${formatBytes(budget)}) · ${ms} ms`);
      else setStatus(node, 'ok', `${n} -> ${fused.width}x${fused.height} · ${method} · ${ms} ms`);
      send(msg);
    });
  }
  RED.nodes.registerType('msc-fusion', MscFusion);
};
