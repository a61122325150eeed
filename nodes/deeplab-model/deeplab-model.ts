/** deeplab-model: the config node naming a network, its weights and backend; the handle into the model cache. */
import type { NodeAPI, NodeDef } from 'node-red';
import { getModelCache } from '../../lib/compute/model-cache';
import { classColors, CLASS_PRESETS, isClassPresetName } from '../../lib/data/palette';
import { modelConfigFromProps, ModelProps, presetOf } from './model-props';
import { listPublished } from '../../lib/weights/catalogue';
import type { DeeplabModelNode } from '../_shared/model-node';

export = function register(RED: NodeAPI): void {
  function DeeplabModel(this: DeeplabModelNode, def: NodeDef & ModelProps) {
    RED.nodes.createNode(this, def);
    this.classNames = [];
    this.classColors = [];
    try {
      this.modelConfig = modelConfigFromProps(def, RED.settings.userDir || process.cwd());
      this.classNames = this.modelConfig.classNames ?? [];
      const presetName = def.weightsSource === 'published' ? presetOf(this.classNames) : def.classPreset;
      const preset = presetName && isClassPresetName(presetName) ? CLASS_PRESETS[presetName] : undefined;
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

  // The catalogue of published weights for the editor's list (what the dialog shows and locks).
  RED.httpAdmin.get('/deeplab/catalogue', RED.auth.needsPermission('deeplab-model.read'), (_req, res) => {
    res.json(listPublished().map((e) => ({
      id: e.id, title: e.title, format: e.format, layout: e.layout, spec: e.spec, dataset: e.dataset, classes: e.classNames.length,
      preset: presetOf(e.classNames) ?? null, preprocessing: e.preprocessing, score: e.score, manual: e.manual ? e.manual.page : null,
      backboneOnly: e.backboneOnly === true, sizeMB: e.sizeMB ?? null, fileName: e.fileName,
    })));
  });
};
