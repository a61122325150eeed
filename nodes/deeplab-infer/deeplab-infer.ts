/**
 * deeplab-infer: image in, logits at the output stride out (one ScoreMap, or one per
 * scale / flip for msc-fusion). Decoding runs on libuv's pool (sharp), the forward pass in
 * the compute worker that holds the model; a bounded queue protects live streams.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { getModelCache, ModelHandle } from '../../lib/compute/model-cache';
import { checkInferOptions, InferOptions, parseScales, RESIZE_POLICIES, ResizePolicy } from '../../lib/inference/plan';
import { toRawImage, DEFAULT_MAX_PIXELS } from '../../lib/data/image';
import { BoundedQueue, QueuePolicy, QUEUE_POLICIES } from '../../lib/runtime/bounded-queue';
import { checkMemory, memoryBudgetBytes } from '../../lib/runtime/memory-budget';
import { inferMemory } from '../../lib/inference/memory';
import { toWireRawImage, toWireScoreMap } from '../../lib/contract';
import { normalizeModelConfig } from '../../lib/models/config';
import { CLASS_PRESETS } from '../../lib/data/palette';
import { errorText, getProp, Msg, Send, setProp, setStatus } from '../_shared/node-kit';
import { boolProp, intProp, numberProp, pathProp, stringProp } from '../_shared/props';
import { followLoad, modelNodeOf } from '../_shared/model-node';

interface InferProps {
  model?: string;
  resizePolicy?: string;
  /** Read as a fallback: the editor reserves `resize` on nodes, so hand-written flows may still use it. */
  resize?: unknown;
  size?: string | number;
  scales?: string;
  flip?: boolean | string;
  queueSize?: string | number;
  queuePolicy?: string;
  maxPixels?: string | number;
  property?: string;
  output?: string;
  /** MB; blank: DEEPLAB_MEMORY_BUDGET_MB or 512. */
  memoryBudget?: string | number;
}

interface Job {
  msg: Msg;
  send: Send;
  done: (err?: Error) => void;
}

export = function register(RED: NodeAPI): void {
  function DeeplabInfer(this: Node, def: NodeDef & InferProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    let handle: ModelHandle | undefined;
    let backend = '';
    let classNames: string[] = [...CLASS_PRESETS.voc21.names];
    let lastMs = 0;
    let opts: InferOptions;
    let queue: BoundedQueue<Job>;
    const input = pathProp(def.property);
    const output = pathProp(def.output);
    try {
      opts = checkInferOptions({
        resize: stringProp<ResizePolicy>(def.resizePolicy ?? (typeof def.resize === 'string' ? def.resize : undefined), 'valid', RESIZE_POLICIES),
        size: numberProp(def.size, 513, 'size'),
        scales: parseScales(def.scales),
        flip: boolProp(def.flip, false),
      });
      const maxPixels = intProp(def.maxPixels, DEFAULT_MAX_PIXELS, 'max pixels', { min: 1 });
      const budget = memoryBudgetBytes(def.memoryBudget);
      const policy = stringProp<QueuePolicy>(def.queuePolicy, 'drop-oldest', QUEUE_POLICIES);
      // A message that will not run reaches Catch with its code (msg.error.code) and the original
      // message, so an http-in flow can answer it (503); done(err) reports it exactly once.
      queue = new BoundedQueue<Job>(intProp(def.queueSize, 2, 'queue size', { min: 0, max: 10000 }), policy, (job) => runJob(job, maxPixels, budget), (job, err) => {
        job.done(err);
        showReady();
      });
      const cfgNode = modelNodeOf(RED, def.model);
      if (cfgNode) {
        handle = cfgNode.acquire();
        classNames = cfgNode.classNames;
      } else {
        // Only type and wires: the editor's default model (DeepLab v3+ MobileNetV2, VOC, random init).
        handle = getModelCache().acquire(normalizeModelConfig({ spec: { variant: 'v3plus', classes: 21 }, classNames }));
      }
    } catch (err) {
      setStatus(node, 'error', errorText(err));
      node.error(err);
    }

    function showReady(): void {
      const q = queue ? ` · q ${queue.length}` : '';
      const d = queue?.dropped ? ` · dropped ${queue.dropped}` : '';
      const r = queue?.refused ? ` · refused ${queue.refused}` : '';
      setStatus(node, 'ok', `${backend}${lastMs ? ` · ${lastMs} ms` : ''}${q}${d}${r}`);
    }

    if (handle) {
      setStatus(node, 'loading', 'loading model...');
      const unfollow = followLoad(node, handle);
      handle.ready().finally(unfollow).then(
        (info) => {
          backend = info.backend;
          if (info.engineNote) node.warn(info.engineNote);
          if (info.classNames) classNames = info.classNames;
          setStatus(node, 'ok', `ready · ${backend} · ${(info.params / 1e6).toFixed(2)}M params`);
        },
        (err) => {
          setStatus(node, 'error', `load failed: ${errorText(err)}`);
          node.error(`model load failed: ${errorText(err)}`);
        },
      );
    }

    async function runJob(job: Job, maxPixels: number, budget: number): Promise<void> {
      const { msg, send, done } = job;
      try {
        if (!handle) throw new Error('no model: fix the node configuration');
        // The image's memory need is checked from its header, before any pixel is decoded.
        const info = await handle.ready();
        const net = { stride: info.graph?.logitStride ?? info.spec.outputStride, classes: info.spec.classes, spec: info.spec };
        const check = (w: number, h: number) => checkMemory(inferMemory(w, h, opts, net), budget, `decoding and segmenting a ${w}x${h} image`,
          'raise the node\'s memory budget, or send a smaller image');
        const image = await toRawImage(getProp(RED, msg, input), { maxPixels, check });
        setStatus(node, 'busy', `${backend || 'running'} · q ${queue.length}`);
        const t0 = Date.now();
        const maps = await handle.infer(image, opts);
        lastMs = Date.now() - t0;
        // Buffers on wires (lib/contract): a fan-out shares them instead of deep-copying typed arrays.
        msg.image = toWireRawImage(image);
        msg.classNames = classNames;
        const wire = maps.map(toWireScoreMap);
        setProp(RED, msg, output, wire.length === 1 ? wire[0] : wire);
        showReady();
        send(msg);
        done();
      } catch (err) {
        setStatus(node, 'error', errorText(err));
        node.error(err instanceof Error ? err : new Error(String(err)), msg);
        done();
      }
    }

    node.on('input', (msg, send, done) => {
      if (!queue) {
        node.error(new Error('node is misconfigured (see its status)'), msg);
        done();
        return;
      }
      queue.push({ msg: msg as Msg, send: send as Send, done });
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      queue?.clear();
      const h = handle;
      handle = undefined;
      (h ? h.release() : Promise.resolve()).then(() => done(), () => done());
    });
  }
  RED.nodes.registerType('deeplab-infer', DeeplabInfer);
};
