/**
 * dense-crf: refines a score map with the fully connected CRF (Krähenbühl & Koltun 2011) using
 * the original image; refined probabilities and labels out. The CRF runs in a compute worker.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { crf } from '../../lib/compute/client';
import { ContractError } from '../../lib/contract';
import { checkCrfInputs } from '../../lib/crf/dense-crf';
import { CRF_PRESET_NAMES, CrfParams, CrfPresetName, applyCrfOverride, crfPreset, validateCrfParams } from '../../lib/crf/params';
import { toRawImage } from '../../lib/data/image';
import { getProp, Msg, onInput, readConfig, requireConfig, setStatus } from '../_shared/node-kit';
import { numberProp, pathProp, stringProp } from '../_shared/props';

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
      };
    });
    if (cfg) setStatus(node, 'idle', `ready · ${cfg.preset}`);

    onInput(node, async (msg: Msg, send) => {
      const { property, imageProperty, output, preset, params: base } = requireConfig(cfg);
      const mapName = `msg.${property}`;
      const imageName = `msg.${imageProperty}`;
      const value = getProp(RED, msg, property);
      if (Array.isArray(value)) {
        throw new ContractError(`${mapName} holds ${value.length} score maps (multi-scale output): fuse them with msc-fusion and upsample first`);
      }
      let img = getProp(RED, msg, imageProperty);
      // An encoded image is accepted too (decoded by sharp off the event loop).
      if (Buffer.isBuffer(img)) img = await toRawImage(img);
      // Shapes here, where the message is; the NaN/Inf scan runs in the worker.
      const { map, image } = checkCrfInputs(value, img, mapName, imageName, false);
      const params = applyCrfOverride(base, msg.crf, 'msg.crf');
      setStatus(node, 'busy', `${map.width}x${map.height}, ${map.classes} classes`);
      const t0 = Date.now();
      const { probs, labels } = await crf({ map, image, params, options: { mapName, imageName } });
      if (output === 'labels') {
        msg.payload = labels;
        msg.probabilities = probs;
      } else {
        msg.payload = probs;
        msg.labels = labels;
      }
      const label = msg.crf !== undefined ? 'msg.crf' : preset;
      setStatus(node, 'ok', `${Date.now() - t0} ms · ${label} · ${params.iterations} it.`);
      send(msg);
    });
  }
  RED.nodes.registerType('dense-crf', DenseCrf);
};
