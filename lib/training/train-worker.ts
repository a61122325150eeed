/**
 * Entry point of a training worker thread: one training run (or CRF search) at a time, with
 * pause / resume / stop taken between steps, progress posted as it goes. The heavy compute
 * never touches Node-RED's event loop; its data thread (data-worker) prepares batches ahead.
 */
import { parentPort, workerData } from 'worker_threads';
import { initBackend } from '../engine/backend';
import { predictProbs } from '../inference/predict';
import { DeepLab } from '../models/deeplab';
import { assignWeights } from '../weights/format';
import { readWeights } from '../weights/load';
import { findLatestCheckpoint } from './checkpoint';
import { TrainConfig } from './config';
import { crfGridSearch, CrfCase, PAPER_CRF_GRID } from './crf-search';
import { openSource } from './data';
import { CrfRequest, FromWorker, ResumeMode, ToWorker } from './protocol';
import { isWasmMemoryError, RunControl, Trainer } from './trainer';

const port = parentPort;
if (!port) throw new Error('train-worker must run in a worker thread');
const post = (m: FromWorker) => port.postMessage(m);

const ready = initBackend((workerData as { backend?: string } | undefined)?.backend);
ready.then((backend) => post({ type: 'ready', backend }), (err: Error) => post({ type: 'error', message: `backend: ${err.message}`, name: err.name, phase: 'training' }));

let busy = false;
let trainer: Trainer | undefined;
let control: RunControl & { paused: boolean; release?: () => void } = { stopRequested: false, paused: false };
let crfStop = false;

function gate(c: typeof control): Promise<void> {
  if (!c.paused || c.stopRequested) return Promise.resolve();
  post({ type: 'paused', iteration: trainer?.iteration ?? 0 });
  return new Promise<void>((resolve) => {
    c.release = () => {
      c.release = undefined;
      resolve();
    };
  });
}

function fail(err: unknown, phase: 'training' | 'crf'): void {
  const e = err instanceof Error ? err : new Error(String(err));
  post({ type: 'error', message: e.message, name: e.name, phase });
  // An aborted WebAssembly instance cannot be used again: end this thread, the next run starts a fresh one.
  if (isWasmMemoryError(e)) setImmediate(() => process.exit(1));
}

async function train(config: TrainConfig, resume: ResumeMode, crfAfter?: CrfRequest): Promise<void> {
  const backend = await ready;
  trainer?.dispose();
  trainer = undefined;
  const c = { stopRequested: false, paused: false } as typeof control;
  c.waitWhilePaused = () => gate(c);
  control = c;
  const t = await Trainer.create(config, { resume });
  trainer = t;
  post({ type: 'started', info: { iteration: t.iteration, maxIter: t.maxIter, resumedFrom: t.resumedFrom, params: t.parameterCount, backend, notes: t.notes } });
  let reason: 'finished' | 'stopped';
  try {
    reason = await t.run(c, {
      onProgress: (progress) => post({ type: 'progress', progress }),
      onEval: (e) => post({ type: 'eval', iteration: e.iteration, report: e.report, best: e.best }),
      onCheckpoint: (checkpoint) => post({ type: 'checkpoint', checkpoint }),
    });
  } finally {
    await t.close();
  }
  const crfNext = reason === 'finished' && !!crfAfter;
  post({ type: 'done', reason, iteration: t.iteration, maxIter: t.maxIter, bestMeanIoU: t.bestEval?.meanIoU, crfNext });
  if (crfNext && crfAfter) {
    try {
      await searchCrf(config, crfAfter);
    } catch (err) {
      fail(err, 'crf');
    }
  }
}

/** The model the CRF search uses: the one just trained, else the newest checkpoint, else the configured weights. */
async function modelFor(config: TrainConfig): Promise<{ model: DeepLab; owned: boolean }> {
  if (trainer) return { model: trainer.model, owned: false };
  const model = new DeepLab(config.model.spec);
  try {
    const ck = config.checkpointDir ? findLatestCheckpoint(config.checkpointDir) : undefined;
    const saved = ck ? ck.saved : await readWeights(config.model.weights);
    if (!saved) throw new Error('the CRF search needs a trained model: train first, or set a checkpoint folder or weights');
    assignWeights(model, saved, { partial: true });
    return { model, owned: true };
  } catch (err) {
    model.dispose();
    throw err;
  }
}

async function searchCrf(config: TrainConfig, req: CrfRequest): Promise<void> {
  await ready;
  if (!config.val) throw new Error('the CRF search needs validation data (set a validation split)');
  crfStop = false;
  const { model, owned } = await modelFor(config);
  try {
    const source = await openSource(config.val);
    const n = req.images === 0 ? source.count : Math.min(req.images ?? 10, source.count);
    const cases: CrfCase[] = [];
    for (let i = 0; i < n; i++) {
      const s = await source.get(i);
      cases.push({ image: s.image, label: s.label, scores: predictProbs(model, config.model.preprocessing, s.image) });
    }
    const grid = { ...PAPER_CRF_GRID, ...req.grid };
    post({ type: 'crf-started', images: n, trials: (grid.w1?.length ?? 0) * (grid.thetaAlpha?.length ?? 0) * (grid.thetaBeta?.length ?? 0) });
    const result = await crfGridSearch(cases, {
      grid: req.grid,
      rule: req.rule ?? config.evalRule,
      shouldStop: () => crfStop,
      onTrial: async (done, total, trial) => {
        post({ type: 'crf-progress', done, total, trial });
        await new Promise<void>((r) => setImmediate(r));
      },
    });
    post({ type: 'crf', result });
  } finally {
    if (owned) model.dispose();
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start':
    case 'crf': {
      if (busy) {
        post({ type: 'error', message: 'the training worker is busy', name: 'Error', phase: m.type === 'crf' ? 'crf' : 'training' });
        return;
      }
      busy = true;
      const job = m.type === 'start' ? train(m.config, m.resume, m.crfAfter) : searchCrf(m.config, m.request);
      job.catch((err) => fail(err, m.type === 'crf' ? 'crf' : 'training')).finally(() => {
        busy = false;
      });
      return;
    }
    case 'pause':
      control.paused = true;
      return;
    case 'resume':
      control.paused = false;
      control.release?.();
      post({ type: 'resumed', iteration: trainer?.iteration ?? 0 });
      return;
    case 'stop':
      control.stopRequested = true;
      crfStop = true;
      control.release?.();
      return;
  }
});
