/** deeplab-model: the config node naming a network, its weights and backend; the handle into the model cache. */
import type { NodeAPI, NodeDef } from 'node-red';
import { getModelCache } from '../../lib/cache/model-cache';
import { classColors } from '../../lib/data/palette';
import { CLASS_PRESETS, isClassPresetName } from '../../lib/data/palette';
import { modelConfigFromProps, ModelProps } from '../../lib/models/editor-props';
import type { DeeplabModelNode } from '../_shared/model-node';

export = function register(RED: NodeAPI): void {
  function DeeplabModel(this: DeeplabModelNode, def: NodeDef & ModelProps) {
    RED.nodes.createNode(this, def);
    this.classNames = [];
    this.classColors = [];
    try {
      this.modelConfig = modelConfigFromProps(def, RED.settings.userDir || process.cwd());
      this.classNames = this.modelConfig.classNames ?? [];
      const preset = def.classPreset && isClassPresetName(def.classPreset) ? CLASS_PRESETS[def.classPreset] : undefined;
      this.classColors = classColors(this.classNames.length, preset?.colors);
    } catch (err) {
      this.configError = (err as Error).message;
      this.error(`deeplab-model "${def.name || def.id}": ${this.configError}`);
    }
    this.acquire = () => {
      if (!this.modelConfig) throw new Error(`model config is invalid: ${this.configError}`);
      return getModelCache().acquire(this.modelConfig);
    };
  }
  RED.nodes.registerType('deeplab-model', DeeplabModel);
};
