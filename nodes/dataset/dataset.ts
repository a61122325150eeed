/**
 * dataset: walks a VOC-layout folder (or image/mask folder pairs) and emits one message per
 * sample, paced by the flow: a window of samples in flight, the next one sent when a message
 * comes back to the input (or on a timer). Output 2 carries the run's control messages.
 */
import * as path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { toWireLabelMap } from '../../lib/contract';
import { DatasetListing, ListOptions, Sample, listDataset, loadSample, runOrder } from '../../lib/data/dataset';
import { Pacer } from '../../lib/runtime/pacer';
import { errorText, Msg, onInput, Send, setStatus } from '../_shared/node-kit';
import { boolProp, intProp, numberProp, stringProp } from '../_shared/props';

interface DatasetProps {
  root?: string;
  dir?: string;
  layout?: string;
  split?: string;
  maskSet?: string;
  imagesDir?: string;
  masksDir?: string;
  decodeMask?: boolean | string;
  missingMask?: string;
  shuffle?: boolean | string;
  seed?: string | number;
  limit?: string | number;
  pacing?: string;
  window?: string | number;
  interval?: string | number;
  autoStart?: boolean | string;
}

type MissingMask = 'skip' | 'error' | 'keep';
const COMMANDS = ['start', 'restart', 'stop'] as const;
type Command = (typeof COMMANDS)[number];

interface Run {
  id: number;
  listing: DatasetListing;
  order: Sample[];
  pacer: Pacer;
  timer?: NodeJS.Timeout;
  /** Sends in order even when a later file reads faster. */
  chain: Promise<void>;
  completed: boolean;
}

export = function register(RED: NodeAPI): void {
  function DatasetNode(this: Node, def: NodeDef & DatasetProps) {
    RED.nodes.createNode(this, def);
    setup(this, def);
  }

  function setup(node: Node, def: NodeDef & DatasetProps): void {
    const settings = RED.settings as unknown as { userDir?: string };
    const root = path.resolve(def.root?.trim() || settings.userDir || process.cwd());
    const dir = def.dir?.trim() || '.';
    let configError: string | undefined;
    let listOpts: ListOptions = {};
    let missingMask: MissingMask = 'skip';
    let pacing: 'feedback' | 'interval' = 'feedback';
    let windowSize = 1;
    let intervalMs = 1000;
    let order = { shuffle: false, seed: 0, limit: 0 };
    const decodeMask = boolProp(def.decodeMask, false);
    try {
      listOpts = {
        layout: stringProp(def.layout, 'auto', ['auto', 'voc', 'folders'] as const),
        split: def.split?.trim() || 'val',
        maskSet: stringProp(def.maskSet, 'auto', ['auto', 'SegmentationClass', 'SegmentationClassAug'] as const),
        imagesDir: def.imagesDir?.trim() || 'images',
        masksDir: def.masksDir?.trim() || 'masks',
      };
      missingMask = stringProp<MissingMask>(def.missingMask, 'skip', ['skip', 'error', 'keep']);
      listOpts.keepUnmasked = missingMask === 'keep';
      pacing = stringProp(def.pacing, 'feedback', ['feedback', 'interval'] as const);
      windowSize = intProp(def.window, 1, 'in flight', { min: 1, max: 1000 });
      intervalMs = numberProp(def.interval, 1000, 'interval (ms)', { min: 1, max: 86_400_000 });
      order = {
        shuffle: boolProp(def.shuffle, false),
        seed: intProp(def.seed, 0, 'seed'),
        limit: intProp(def.limit, 0, 'limit', { min: 0 }),
      };
      setStatus(node, 'idle', 'ready: send "start"');
    } catch (err) {
      configError = `dataset configuration: ${errorText(err)}`;
      setStatus(node, 'error', configError);
    }

    let run: Run | undefined;
    let runCounter = 0;
    let lastSend: Send = (m) => node.send(m);

    const progress = (r: Run) => {
      const n = r.order.length;
      if (r.completed) setStatus(node, 'ok', `done: ${n} samples`);
      else if (!r.pacer.isRunning) setStatus(node, 'warn', `stopped at ${r.pacer.sent}/${n}`);
      else setStatus(node, 'busy', `${r.pacer.sent}/${n}${pacing === 'feedback' ? ` · ${r.pacer.pending} in flight` : ''}`);
    };

    const stopRun = (r: Run | undefined) => {
      if (!r) return;
      r.pacer.stop();
      if (r.timer) clearInterval(r.timer);
      r.timer = undefined;
    };

    const finish = (r: Run, send: Send) => {
      if (r.completed || run !== r) return;
      r.completed = true;
      if (r.timer) clearInterval(r.timer);
      r.timer = undefined;
      // Samples still being read (timer pacing) go out first, then the run ends.
      r.chain = r.chain.then(() => {
        if (run !== r) return;
        r.pacer.stop();
        send([null, {
          topic: 'complete', complete: true,
          payload: { count: r.order.length, dir: r.listing.dir, split: listOpts.split, layout: r.listing.layout },
          dataset: { run: r.id },
        }]);
        progress(r);
      });
    };

    /** Reads and sends samples in order; a sample that fails is reported and counted as done. */
    const emit = (r: Run, indices: number[], send: Send) => {
      for (const index of indices) {
        r.chain = r.chain.then(async () => {
          if (run !== r || !r.pacer.isRunning) return;
          const s = r.order[index];
          try {
            const loaded = await loadSample(root, r.listing, s, decodeMask);
            if (run !== r || !r.pacer.isRunning) return;
            const msg: Msg = {
              _msgid: RED.util.generateId(),
              topic: s.id,
              payload: loaded.image,
              id: s.id,
              index,
              count: r.order.length,
              dataset: { run: r.id, id: s.id, index, count: r.order.length, image: s.image, mask: s.mask },
            };
            // A decoded mask travels as a Buffer-backed LabelMap (lib/contract), the file as its bytes.
            const gt = loaded.groundTruth;
            if (gt !== undefined) msg.groundTruth = Buffer.isBuffer(gt) ? gt : toWireLabelMap(gt);
            send([msg, null]);
          } catch (err) {
            node.error(new Error(`sample ${s.id}: ${errorText(err)}`), { topic: s.id, payload: undefined, _msgid: RED.util.generateId() });
            // The sample will never come back: free its slot so the run goes on.
            if (pacing === 'feedback') {
              const more = r.pacer.ack();
              if (more.length) emit(r, more, send);
            }
          }
          progress(r);
          if (pacing === 'feedback' && r.pacer.done) finish(r, send);
        });
      }
    };

    const startRun = async (send: Send) => {
      if (configError) throw new Error(configError);
      stopRun(run);
      const id = ++runCounter;
      setStatus(node, 'loading', 'listing...');
      const listing = await listDataset(root, dir, listOpts);
      if (id !== runCounter) return; // a newer start came while listing
      if (missingMask === 'error' && listing.missingMasks.length) {
        throw new Error(`${listing.missingMasks.length} sample(s) have no mask: ${listing.missingMasks.slice(0, 10).join(', ')}${listing.missingMasks.length > 10 ? ', ...' : ''}`);
      }
      if (missingMask === 'skip' && listing.missingMasks.length) {
        node.warn(`dataset: ${listing.missingMasks.length} sample(s) without a mask skipped: ${listing.missingMasks.slice(0, 10).join(', ')}${listing.missingMasks.length > 10 ? ', ...' : ''}`);
      }
      if (listing.missingImages.length) {
        node.warn(`dataset: ${listing.missingImages.length} id(s) of the split have no image: ${listing.missingImages.slice(0, 10).join(', ')}`);
      }
      const samples = runOrder(listing.samples, order);
      const r: Run = { id, listing, order: samples, pacer: new Pacer(samples.length, windowSize), chain: Promise.resolve(), completed: false };
      run = r;
      send([null, { topic: 'reset', payload: 'reset', reset: true, dataset: { run: id, count: samples.length, dir: listing.dir } }]);
      if (pacing === 'feedback') {
        emit(r, r.pacer.start(), send);
        if (samples.length === 0) finish(r, send);
      } else {
        r.pacer.start(true);
        const tick = () => {
          const i = r.pacer.tick();
          if (i === null) finish(r, send);
          else emit(r, [i], send);
        };
        tick();
        r.timer = setInterval(tick, intervalMs);
      }
      progress(r);
    };

    onInput(node, async (msg, send) => {
      lastSend = send;
      const command = commandOf(msg);
      if (command === 'start' || command === 'restart') {
        if (command === 'start' && run && run.pacer.isRunning) {
          node.warn('dataset: already running; send "restart" to start over');
          return;
        }
        await startRun(send);
        return;
      }
      if (command === 'stop') {
        stopRun(run);
        if (run) progress(run);
        return;
      }
      // Anything else is a sample coming back: it frees a slot of the window.
      const r = run;
      if (!r || pacing !== 'feedback' || !r.pacer.isRunning) return;
      const tag = msg.dataset as { run?: unknown } | undefined;
      if (tag && typeof tag === 'object' && typeof tag.run === 'number' && tag.run !== r.id) return; // from an older run
      emit(r, r.pacer.ack(), send);
      progress(r);
      if (r.pacer.done) finish(r, send);
    });

    if (boolProp(def.autoStart, false) && !configError) {
      const t = setTimeout(() => {
        startRun((m) => lastSend(m)).catch((err) => {
          setStatus(node, 'error', errorText(err));
          node.error(err);
        });
      }, 100);
      node.on('close', () => clearTimeout(t));
    }

    node.on('close', (done: () => void) => {
      stopRun(run);
      run = undefined;
      runCounter++;
      done();
    });
  }
  RED.nodes.registerType('deeplab-dataset', DatasetNode);
};

function commandOf(msg: Msg): Command | undefined {
  // A sample coming back carries its id as topic: only untagged messages are read by topic.
  const candidates = msg.dataset === undefined ? [msg.payload, msg.topic] : [msg.payload];
  for (const v of candidates) {
    const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
    if ((COMMANDS as readonly string[]).includes(s)) return s as Command;
  }
  return undefined;
}
