/** The shape of the deeplab-model config node as other nodes see it. */
import type { Node } from 'node-red';
import type { ModelHandle } from '../../lib/compute/model-cache';
import type { ModelConfig } from '../../lib/models/config';
import type { RGB } from '../../lib/data/palette';

export interface DeeplabModelNode extends Node {
  modelConfig?: ModelConfig;
  configError?: string;
  classNames: string[];
  classColors: RGB[];
  /** A handle on the shared cached model; release it when the using node closes. */
  acquire(): ModelHandle;
}
