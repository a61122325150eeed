/** seg-render: labels (or scores, argmax taken) to a colour mask / overlay / side-by-side picture with a legend. */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ContractError, expectLabelMap, expectScoreMap, isLabelMap, isScoreMap, LabelMap, describeValue } from '../../lib/contract';
import { argmaxScoreMap } from '../../lib/ops/score-map';
import { DEFAULT_RENDER, RENDER_MODES, RenderMode, renderMemory, renderSegmentation } from '../../lib/render/render';
import { checkMemory, memoryBudgetBytes } from '../../lib/runtime/memory-budget';
import { CLASS_PRESETS } from '../../lib/data/palette';
import { modelNodeOf } from '../_shared/model-node';
import { getProp, Msg, onInput, readConfig, readImage, requireConfig, setProp, setStatus } from '../_shared/node-kit';
import { boolProp, intProp, numberProp, pathProp, stringProp } from '../_shared/props';

interface RenderProps {
  model?: string;
  mode?: string;
  opacity?: string | number;
  legend?: boolean | string;
  format?: string;
  quality?: string | number;
  property?: string;
  imageProperty?: string;
  output?: string;
  /** MB; blank: DEEPLAB_MEMORY_BUDGET_MB or 512. */
  memoryBudget?: string | number;
}

export = function register(RED: NodeAPI): void {
  function SegRender(this: Node, def: NodeDef & RenderProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    const opts = readConfig(node, () => ({
      property: pathProp(def.property),
      output: pathProp(def.output),
      imageProperty: pathProp(def.imageProperty, 'image'),
      mode: stringProp<RenderMode>(def.mode, DEFAULT_RENDER.mode, RENDER_MODES),
      opacity: numberProp(def.opacity, DEFAULT_RENDER.opacity, 'opacity', { min: 0, max: 1 }),
      legend: boolProp(def.legend, DEFAULT_RENDER.legend),
      format: stringProp(def.format, 'png', ['png', 'jpeg'] as const),
      quality: intProp(def.quality, DEFAULT_RENDER.quality, 'JPEG quality', { min: 1, max: 100 }),
      model: modelNodeOf(RED, def.model),
      budget: memoryBudgetBytes(def.memoryBudget),
    }));
    if (opts) setStatus(node, 'idle', 'ready');

    onInput(node, async (msg: Msg, send) => {
      const { property, output, imageProperty, mode, opacity, legend, format, quality, model: cfg, budget } = requireConfig(opts);
      const value = getProp(RED, msg, property);
      const isLabels = isLabelMap(value);
      if (!isLabels && !isScoreMap(value)) throw new ContractError(`msg.${property}: expected a LabelMap or a ScoreMap, got ${describeValue(value)}`);
      const image = getProp(RED, msg, imageProperty) === undefined ? undefined : readImage(RED, msg, imageProperty);
      const map = isLabels ? undefined : expectScoreMap(value, `msg.${property}`);
      const given = map ? undefined : expectLabelMap(value, `msg.${property}`);
      const size = map ?? given!;
      // Before anything is allocated: the picture's memory (and the argmax of a score map).
      checkMemory(renderMemory(size, image, mode) + (map ? map.width * map.height : 0), budget,
        `rendering ${image ? `${image.width}x${image.height}` : `${size.width}x${size.height}`} (${mode})`);
      const labels: LabelMap = map ? argmaxScoreMap(map) : given!;
      let classes = map ? map.classes : 0;
      const names = cfg?.classNames.length ? cfg.classNames : Array.isArray(msg.classNames) ? (msg.classNames as string[]) : [...CLASS_PRESETS.voc21.names];
      const colors = cfg?.classColors.length ? cfg.classColors : undefined;
      if (!classes) classes = Math.max(names.length, 1);
      const t0 = Date.now();
      const r = await renderSegmentation(labels, image, classes, { mode, opacity, legend, format, quality, names, colors });
      setProp(RED, msg, output, r.buffer);
      msg.classesPresent = r.classesPresent;
      msg.contentType = format === 'jpeg' ? 'image/jpeg' : 'image/png';
      setStatus(node, 'ok', `${r.width}x${r.height} ${format} · ${r.classesPresent.length} classes · ${Date.now() - t0} ms`);
      send(msg);
    });
  }
  RED.nodes.registerType('seg-render', SegRender);
};
