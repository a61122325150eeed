/**
 * dense-crf: refines a score map with the fully connected CRF (Krähenbühl & Koltun 2011) using
 * the original image; labels at the image's size out (the refined probabilities only when asked).
 * The CRF runs in a compute worker, at the image's size or, where that would not fit the memory
 * budget, at a smaller working size (lib/crf/working-resolution).
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { crfAtWorkingSize } from '../../lib/compute/client';
import { ContractError, expectScoreMap, toWireLabelMap, toWireScoreMap } from '../../lib/contract';
import { checkCrfInputs } from '../../lib/crf/dense-crf';
import { planCrf } from '../../lib/crf/working-resolution';
import { formatBytes, memoryBudgetBytes } from '../../lib/runtime/memory-budget';
import { CRF_PRESET_NAMES, CrfParams, CrfPresetName, applyCrfOverride, crfPreset, validateCrfParams } from '../../lib/crf/params';
import { toRawImage } from '../../lib/data/image';
import { getProp, Msg, onInput, readConfig, requireConfig, setProp, setStatus } from '../_shared/node-kit';
import { boolProp, numberProp, pathProp, stringProp } from '../_shared/props';

interface DenseCrfProps {
  property?: string;
  imageProperty?: string;
  /** What comes out: labels or probs. Flows before 0.2 said 'output', which wins until the dialog is saved again. */
  result?: string;
  output?: string;
  preset?: string;
  iterations?: string | number;
  w1?: string | number;
  thetaAlpha?: string | number;
  thetaBeta?: string | number;
  w2?: string | number;
  thetaGamma?: string | number;
  /** How a coarser map (stride > 1) is resized to the working size. */
  alignCorners?: boolean | string;
  /** MB; blank: DEEPLAB_MEMORY_BUDGET_MB or 512. */
  memoryBudget?: string | number;
}

type Output = 'labels' | 'probs';
type PresetChoice = CrfPresetName | 'custom';

const DEFAULT_PRESET: CrfPresetName = 'deeplab-v2';

/** The parameters the node's configuration stands for (custom fields default to the DeepLab v2 preset). */
function configuredParams(def: DenseCrfProps, preset: PresetChoice): CrfParams {
  if (preset !== 'custom') return crfPreset(preset);
  const d = crfPreset(DEFAULT_PRESET);
  return validateCrfParams({
    iterations: numberProp(def.iterations, d.iterations, 'iterations'),
    w1: numberProp(def.w1, d.w1, 'w1'),
    thetaAlpha: numberProp(def.thetaAlpha, d.thetaAlpha, 'thetaAlpha'),
    thetaBeta: numberProp(def.thetaBeta, d.thetaBeta, 'thetaBeta'),
    w2: numberProp(def.w2, d.w2, 'w2'),
    thetaGamma: numberProp(def.thetaGamma, d.thetaGamma, 'thetaGamma'),
  }, 'custom CRF parameters');
}

export = function register(RED: NodeAPI): void {
  function DenseCrf(this: Node, def: NodeDef & DenseCrfProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readConfig(node, () => {
      const preset = stringProp<PresetChoice>(def.preset, DEFAULT_PRESET, [...CRF_PRESET_NAMES, 'custom']);
      return {
        property: pathProp(def.property),
        imageProperty: pathProp(def.imageProperty, 'image'),
        output: stringProp<Output>(def.output || def.result, 'labels', ['labels', 'probs']),
        preset,
        params: configuredParams(def, preset),
        alignCorners: boolProp(def.alignCorners, true),
        budget: memoryBudgetBytes(def.memoryBudget),
      };
    });
    if (cfg) setStatus(node, 'idle', `ready · ${cfg.preset}`);

    onInput(node, async (msg: Msg, send) => {
      const { property, imageProperty, output, preset, params: base, alignCorners, budget } = requireConfig(cfg);
      const mapName = `msg.${property}`;
      const imageName = `msg.${imageProperty}`;
      const value = getProp(RED, msg, property);
      if (Array.isArray(value)) {
        throw new ContractError(`${mapName} holds ${value.length} score maps (multi-scale output): fuse them with msc-fusion and upsample first`);
      }
      let img = getProp(RED, msg, imageProperty);
      // An encoded image is accepted too (decoded by sharp off the event loop, once its size fits the budget).
      const encoded = Buffer.isBuffer(img);
      if (encoded) {
        const scores = expectScoreMap(value, mapName);
        img = await toRawImage(img, { check: (width, height) => planCrf(scores, { width, height }, budget, output === 'probs') });
      }
      // Shapes here, where the message is; the NaN/Inf scan runs in the worker. A map coarser than
      // the image (stride > 1) is resized to the working size in the worker.
      const { map, image } = checkCrfInputs(value, img, mapName, imageName, false, true);
      // A RawImage of another form goes on with its data as a Buffer (cheap to clone on later wires).
      if (!encoded && image !== img) setProp(RED, msg, imageProperty, image);
      const params = applyCrfOverride(base, msg.crf, 'msg.crf');
      // Before anything is allocated: the working size that fits the budget, or a refusal.
      const plan = planCrf(map, image, budget, output === 'probs');
      setStatus(node, 'busy', `${plan.width}x${plan.height}, ${map.classes} classes`);
      const t0 = Date.now();
      const r = await crfAtWorkingSize({
        map, image, params, width: plan.width, height: plan.height, alignCorners, probs: output === 'probs', options: { mapName, imageName },
      });
      const labels = toWireLabelMap(r.labels);
      if (output === 'labels') msg.payload = labels;
      else {
        msg.payload = toWireScoreMap(r.probs!);
        msg.labels = labels;
      }
      const label = msg.crf !== undefined ? 'msg.crf' : preset;
      const ms = Date.now() - t0;
      if (plan.capped) setStatus(node, 'warn', `CRF at ${plan.width}x${plan.height} (budget ${formatBytes(budget)}) · ${ms} ms`);
      else setStatus(node, 'ok', `${ms} ms · ${label} · ${params.iterations} it.`);
      send(msg);
    });
  }
  RED.nodes.registerType('dense-crf', DenseCrf);
};
