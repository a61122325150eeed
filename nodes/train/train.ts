/**
 * train: runs DeepLab training in its own worker thread, driven by control messages (start,
 * stop, pause, resume, status, crf). Output 1: progress points for a chart; output 2:
 * evaluations, checkpoints (hot-swapped into the model cache) and run events.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { getModelCache } from '../../lib/compute/model-cache';
import { ModelConfig } from '../../lib/models/config';
import { sameNetwork } from '../../lib/models/deeplab';
import { TrainingController, TrainingStatus } from '../../lib/training/controller';
import { TrainConfig } from '../../lib/training/config';
import { trainSetupFromProps, TrainProps, TrainSetup } from './train-props';
import { errorText, Msg, onInput, Send, setStatus } from '../_shared/node-kit';
import { DeeplabModelNode, modelNodeOf } from '../_shared/model-node';

interface TrainNodeProps extends TrainProps {
  model?: string;
}

const COMMANDS = ['start', 'restart', 'stop', 'pause', 'resume', 'status', 'crf'] as const;
type Command = (typeof COMMANDS)[number];

/** The command of a control message: payload string, payload.command, msg.command or msg.topic. */
function commandOf(msg: Msg): Command {
  const p = msg.payload as unknown;
  const candidates = [
    typeof p === 'string' ? p : undefined,
    p && typeof p === 'object' && !Buffer.isBuffer(p) ? (p as { command?: unknown }).command : undefined,
    msg.command,
    msg.topic,
  ];
  for (const c of candidates) {
    if (typeof c === 'string' && (COMMANDS as readonly string[]).includes(c.trim().toLowerCase())) return c.trim().toLowerCase() as Command;
  }
  throw new Error(`unknown control message: expected msg.payload (or msg.topic) "start", "restart", "stop", "pause", "resume", "status" or "crf", got ${JSON.stringify(p)?.slice(0, 60)}`);
}

/** Options a start message carries: msg.options, or the rest of an object payload. */
function overridesOf(msg: Msg): Record<string, unknown> {
  const p = msg.payload as unknown;
  const fromPayload = p && typeof p === 'object' && !Buffer.isBuffer(p) && !Array.isArray(p) ? { ...(p as Record<string, unknown>) } : {};
  delete fromPayload.command;
  const opts = msg.options && typeof msg.options === 'object' ? (msg.options as Record<string, unknown>) : {};
  return { ...fromPayload, ...opts };
}

function duration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '?';
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

const sameModel = (a: ModelConfig, b: ModelConfig) => sameNetwork(a.spec, b.spec) && a.preprocessing === b.preprocessing;

export = function register(RED: NodeAPI): void {
  function TrainNode(this: Node, def: NodeDef & TrainNodeProps) {
    RED.nodes.createNode(this, def);
    const node = this;
    const settings = RED.settings as unknown as { userDir?: string };
    const userDir = settings.userDir || process.cwd();
    let modelNode: DeeplabModelNode | undefined;
    let missingModel: string | undefined;
    try {
      modelNode = modelNodeOf(RED, def.model);
    } catch (err) {
      missingModel = errorText(err);
      setStatus(node, 'error', missingModel);
      node.error(`train: ${missingModel}`);
    }

    const setup = (overrides: Record<string, unknown> = {}): TrainSetup => {
      if (missingModel) throw new Error(missingModel);
      if (modelNode && !modelNode.modelConfig) throw new Error(`the deeplab-model config is invalid: ${modelNode.configError}`);
      return trainSetupFromProps(def, { userDir, nodeId: node.id, model: modelNode?.modelConfig }, overrides);
    };

    const controller = new TrainingController({
      backend: modelNode?.modelConfig?.backend,
      publish: async (dir: string, config: TrainConfig) => {
        // Every cached model with this network takes the new weights (deeplab-infer nodes included).
        return getModelCache().publish({ dir }, (c) => sameModel(c, config.model));
      },
    });

    let lastSetup: TrainSetup | undefined;
    // Where asynchronous reports go: the send of the last control message (for Catch routing too).
    let lastMsg: Msg | undefined;
    let lastSend: Send = (m) => node.send(m);
    const out2 = (m: Record<string, unknown>) => lastSend([null, m as NodeMessage]);

    const showStatus = (s: TrainingStatus = controller.status()) => {
      const it = `${s.iteration}/${s.maxIter}`;
      const pct = `${Math.floor(s.percent)}%`;
      switch (s.state) {
        case 'idle': setStatus(node, 'idle', 'ready: send "start"'); break;
        case 'starting': setStatus(node, 'loading', `starting${s.backend ? ` on ${s.backend}` : ''}...`); break;
        case 'running':
          setStatus(node, 'busy', `${pct} · it ${it}${s.loss !== undefined ? ` · loss ${s.loss.toFixed(3)}` : ''} · ETA ${duration(s.etaSeconds)}${s.backend ? ` · ${s.backend}` : ''}`);
          break;
        case 'pausing': setStatus(node, 'warn', `pausing at ${it}...`); break;
        case 'paused': setStatus(node, 'warn', `paused ${pct} · it ${it}`); break;
        case 'stopping': setStatus(node, 'warn', `stopping at ${it} (checkpoint)...`); break;
        case 'searching': setStatus(node, 'busy', `CRF search ${s.crf ? `${s.crf.done}/${s.crf.total}` : '...'}`); break;
        case 'finished': setStatus(node, 'ok', `done ${it}${s.bestMeanIoU != null ? ` · best mIoU ${s.bestMeanIoU.toFixed(3)}` : ''}`); break;
        case 'stopped': setStatus(node, 'warn', `stopped at ${it} ${pct} (checkpoint kept)`); break;
        case 'failed': setStatus(node, 'error', s.error ?? 'failed'); break;
      }
    };

    controller.on('state', () => showStatus());
    controller.on('started', (info) => {
      out2({
        topic: 'started',
        payload: { ...info, checkpointDir: lastSetup?.config.checkpointDir },
      });
    });
    controller.on('progress', (p) => {
      showStatus();
      const payload = {
        x: p.iteration, y: p.loss,
        iteration: p.iteration, maxIter: p.maxIter, percent: p.percent, loss: p.loss, lr: p.lr,
        imagesPerSec: p.imagesPerSec, etaSeconds: p.etaSeconds, elapsedMs: p.elapsedMs, dataWaitMs: p.dataWaitMs, stepMs: p.stepMs,
      };
      lastSend([{ topic: 'loss', payload } as NodeMessage, null]);
    });
    controller.on('eval', (e) => {
      out2({
        topic: 'eval',
        payload: { x: e.iteration, y: e.report.meanIoU, iteration: e.iteration, meanIoU: e.report.meanIoU, pixelAccuracy: e.report.pixelAccuracy, best: e.best, report: e.report },
      });
    });
    controller.on('checkpoint', (c) => {
      out2({ topic: 'checkpoint', payload: c });
      if (c.publishError) node.warn(`train: checkpoint ${c.dir} written, but publishing it to the model cache failed: ${c.publishError}`);
    });
    controller.on('done', (d) => {
      showStatus();
      out2({ topic: 'done', payload: { ...d, checkpointDir: lastSetup?.config.checkpointDir } });
    });
    controller.on('crfProgress', () => showStatus());
    controller.on('crf', (r) => {
      showStatus();
      // msg.crf is what dense-crf takes as its per-message parameters.
      out2({ topic: 'crf', crf: r.best, payload: r });
    });
    controller.on('log', (t) => node.log(t));
    controller.on('error', (err) => {
      showStatus();
      node.error(new Error(`train: ${err.phase === 'crf' ? 'CRF search' : 'training'} failed: ${err.message}`), lastMsg ?? {});
    });

    showStatus();

    onInput(node, async (msg, send) => {
      const command = commandOf(msg);
      lastMsg = msg;
      lastSend = send;
      switch (command) {
        case 'start':
        case 'restart': {
          if (controller.busy) {
            const s = controller.status();
            throw new Error(`"${command}" refused: training is already ${s.state} (iteration ${s.iteration}/${s.maxIter}); send "stop" first`);
          }
          const overrides = overridesOf(msg);
          const st = setup(overrides);
          lastSetup = st;
          controller.start(st.config, command === 'restart' ? 'never' : st.resume, st.crfAfter);
          return;
        }
        case 'stop': {
          if (!controller.busy) {
            send([null, { ...msg, topic: 'status', payload: controller.status() }]);
            return;
          }
          await controller.stop();
          return;
        }
        case 'pause':
          if (!controller.pause()) throw new Error(`"pause" refused: training is ${controller.state}, not running`);
          return;
        case 'resume':
          if (!controller.resume()) throw new Error(`"resume" refused: training is ${controller.state}, not paused (to continue a stopped run from its checkpoint, send "start")`);
          return;
        case 'status':
          send([null, { ...msg, topic: 'status', payload: controller.status() }]);
          return;
        case 'crf': {
          if (controller.busy) throw new Error(`"crf" refused: training is ${controller.state}; wait for the run to end or send "stop"`);
          const st = setup(overridesOf(msg));
          lastSetup = st;
          controller.searchCrf(st.config, st.crf);
          return;
        }
      }
    });

    node.on('close', (done: () => void) => {
      // A redeploy stops the run with a checkpoint (a later "start" resumes it).
      controller.close(10_000).catch((err) => node.warn(`train: ${errorText(err)}`)).finally(() => done());
    });
  }
  RED.nodes.registerType('deeplab-train', TrainNode);
};
