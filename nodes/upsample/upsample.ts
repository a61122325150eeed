/** upsample: a ScoreMap to the image's size (or a fixed size) by bilinear interpolation; optional softmax / argmax. */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, expectScoreMap, toWireLabelMap, toWireScoreMap } from '../../lib/contract';
import { upsample } from '../../lib/compute/client';
import { planUpsample, UpsampleOutput } from '../../lib/ops/score-map';
import { formatBytes, memoryBudgetBytes } from '../../lib/runtime/memory-budget';
import { getProp, Msg, onInput, readConfig, readImage, requireConfig, setProp, setStatus } from '../_shared/node-kit';
import { boolProp, intProp, pathProp, stringProp } from '../_shared/props';

interface UpsampleProps {
  sizeFrom?: string;
  width?: string | number;
  height?: string | number;
  alignCorners?: boolean | string;
  /** What comes out: probs, labels or both. Flows before 0.2 said 'output', which wins until the dialog is saved again. */
  result?: string;
  output?: string;
  property?: string;
  imageProperty?: string;
  /** MB; blank: DEEPLAB_MEMORY_BUDGET_MB or 512. */
  memoryBudget?: string | number;
}

const OUTPUTS: UpsampleOutput[] = ['scores', 'probs', 'labels', 'both'];

export = function register(RED: NodeAPI): void {
  function Upsample(this: Node, def: NodeDef & UpsampleProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readConfig(node, () => ({
      property: pathProp(def.property),
      imageProperty: pathProp(def.imageProperty, 'image'),
      sizeFrom: stringProp(def.sizeFrom, 'image', ['image', 'fixed'] as const),
      alignCorners: boolProp(def.alignCorners, true),
      output: stringProp<UpsampleOutput>(def.output || def.result, 'probs', OUTPUTS),
      fixedW: intProp(def.width, 513, 'width', { min: 1, max: 16384 }),
      fixedH: intProp(def.height, 513, 'height', { min: 1, max: 16384 }),
      budget: memoryBudgetBytes(def.memoryBudget),
    }));
    if (cfg) setStatus(node, 'idle', 'ready');

    onInput(node, async (msg: Msg, send) => {
      const { property, imageProperty, sizeFrom, alignCorners, output, fixedW, fixedH, budget } = requireConfig(cfg);
      const value = getProp(RED, msg, property);
      if (Array.isArray(value)) {
        throw new ContractError(`msg.${property} holds ${value.length} score maps (multi-scale output): fuse them with msc-fusion first`);
      }
      const map = expectScoreMap(value, `msg.${property}`);
      let width = fixedW;
      let height = fixedH;
      if (sizeFrom === 'image') {
        if (getProp(RED, msg, imageProperty) === undefined) throw new ContractError(`msg.${imageProperty} is missing: keep the image from deeplab-infer on the message, or set a fixed size`);
        ({ width, height } = readImage(RED, msg, imageProperty));
      } else if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
        throw new ContractError(`fixed size must be positive integers, got ${width}x${height}`);
      }
      // Before anything is allocated: refused, or the float map capped to the budget.
      const plan = planUpsample(map, width, height, output, budget);
      setStatus(node, 'busy', `${map.width}x${map.height} -> ${width}x${height}`);
      const t0 = Date.now();
      const r = await upsample(map, width, height, alignCorners, output, plan.floatSize);
      const labels = r.labels && toWireLabelMap(r.labels);
      const scores = r.map && toWireScoreMap(r.map);
      if (output === 'labels') setProp(RED, msg, property, labels);
      else {
        setProp(RED, msg, property, scores);
        if (labels) msg.labels = labels;
      }
      const ms = Date.now() - t0;
      if (plan.capped && r.map) {
        setStatus(node, 'warn', `${r.map.width}x${r.map.height} ${output === 'scores' ? 'scores' : 'probs'} (capped: budget ${formatBytes(budget)}) · ${ms} ms`);
      } else setStatus(node, 'ok', `${width}x${height} · ${ms} ms`);
      send(msg);
    });
  }
  RED.nodes.registerType('deeplab-upsample', Upsample);
};
