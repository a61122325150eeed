/** upsample: a ScoreMap to the image's size (or a fixed size) by bilinear interpolation; optional softmax / argmax. */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, expectRawImage, expectScoreMap } from '../../lib/contract';
import { upsample } from '../../lib/compute/client';
import type { UpsampleOutput } from '../../lib/ops/score-map';
import { getProp, Msg, onInput, readConfig, requireConfig, setProp, setStatus } from '../_shared/node-kit';
import { boolProp, numberProp, pathProp, stringProp } from '../_shared/props';

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
      fixedW: numberProp(def.width, 513, 'width'),
      fixedH: numberProp(def.height, 513, 'height'),
    }));
    if (cfg) setStatus(node, 'idle', 'ready');

    onInput(node, async (msg: Msg, send) => {
      const { property, imageProperty, sizeFrom, alignCorners, output, fixedW, fixedH } = requireConfig(cfg);
      const value = getProp(RED, msg, property);
      if (Array.isArray(value)) {
        throw new ContractError(`msg.${property} holds ${value.length} score maps (multi-scale output): fuse them with msc-fusion first`);
      }
      const map = expectScoreMap(value, `msg.${property}`);
      let width = fixedW;
      let height = fixedH;
      if (sizeFrom === 'image') {
        const img = getProp(RED, msg, imageProperty);
        if (img === undefined) throw new ContractError(`msg.${imageProperty} is missing: keep the image from deeplab-infer on the message, or set a fixed size`);
        ({ width, height } = expectRawImage(img, `msg.${imageProperty}`));
      } else if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
        throw new ContractError(`fixed size must be positive integers, got ${width}x${height}`);
      }
      setStatus(node, 'busy', `${map.width}x${map.height} -> ${width}x${height}`);
      const t0 = Date.now();
      const r = await upsample(map, width, height, alignCorners, output);
      if (output === 'labels') setProp(RED, msg, property, r.labels);
      else {
        setProp(RED, msg, property, r.map);
        if (r.labels) msg.labels = r.labels;
      }
      setStatus(node, 'ok', `${width}x${height} · ${Date.now() - t0} ms`);
      send(msg);
    });
  }
  RED.nodes.registerType('upsample', Upsample);
};
