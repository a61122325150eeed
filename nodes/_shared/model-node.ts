/** The shape of the deeplab-model config node as other nodes see it. */
import type { Node, NodeAPI } from 'node-red';
import type { ModelHandle } from '../../lib/compute/model-cache';
import type { ModelConfig } from '../../lib/models/config';
import type { RGB } from '../../lib/data/palette';
import { describeProgress } from '../../lib/weights/download';
import { setStatus } from './node-kit';

export interface DeeplabModelNode extends Node {
  modelConfig?: ModelConfig;
  configError?: string;
  classNames: string[];
  classColors: RGB[];
  /** A handle on the shared cached model; release it when the using node closes. */
  acquire(): ModelHandle;
}

/**
 * The deeplab-model config node a node selected: undefined when none is selected, an error when the
 * selection points at nothing (deleted, or not deployed with the flow): every node treats that alike.
 */
export function modelNodeOf(RED: NodeAPI, id: unknown): DeeplabModelNode | undefined {
  if (!id) return undefined;
  const n = RED.nodes.getNode(String(id)) as DeeplabModelNode | null;
  if (!n) throw new Error('the selected deeplab-model config node is missing (deleted, or not deployed with this flow)');
  return n;
}

/**
 * Shows a model's load in a node's status: download percent and speed of published weights,
 * then "loading model". At most two updates a second (each one is a message to every editor).
 * Returns the unsubscribe.
 */
export function followLoad(node: Node, handle: ModelHandle): () => void {
  let last = 0;
  return handle.onProgress((p) => {
    const now = Date.now();
    if (p.phase === 'download' && now - last < 500 && p.download.percent !== 100) return;
    last = now;
    let text = 'loading model...';
    if (p.phase === 'download') text = `downloading weights ${describeProgress(p.download)}`;
    setStatus(node, 'loading', text);
  });
}
