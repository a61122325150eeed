/**
 * The main-thread side of training: owns one training worker, turns control requests (start,
 * pause, resume, stop, status, CRF search) into messages, and re-emits what the worker reports
 * as events. Checkpoints are published to the model cache from here (the cache lives on the
 * main thread) through the `publish` callback.
 */
import { EventEmitter } from 'events';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { MetricsReport } from '../metrics/confusion';
import type { TrainConfig } from './config';
import type { CrfSearchResult, CrfTrial } from './crf-search';
import type { CrfRequest, FromWorker, ResumeMode, StartedInfo, ToWorker } from './protocol';
import type { CheckpointInfo, ProgressInfo } from './trainer';

export type TrainingState = 'idle' | 'starting' | 'running' | 'pausing' | 'paused' | 'stopping' | 'searching' | 'finished' | 'stopped' | 'failed';

export interface TrainingStatus {
  state: TrainingState;
  iteration: number;
  maxIter: number;
  percent: number;
  loss?: number;
  lr?: number;
  imagesPerSec?: number;
  etaSeconds?: number;
  bestMeanIoU?: number | null;
  lastMeanIoU?: number | null;
  lastCheckpoint?: string;
  backend?: string;
  error?: string;
  crf?: { done: number; total: number };
}

export interface PublishedInfo extends CheckpointInfo {
  /** Cached models that took the new weights (0 when none match or publishing is off). */
  published: number;
  publishError?: string;
}

export interface ControllerOptions {
  /** Backend preference of the worker (auto, wasm, cpu, tensorflow). */
  backend?: string;
  /** Hot swap: called with the published folder after each checkpoint; returns the models updated. */
  publish?: (dir: string, config: TrainConfig) => Promise<number>;
}

export interface ControllerEvents {
  state: [TrainingState];
  started: [StartedInfo];
  progress: [ProgressInfo];
  eval: [{ iteration: number; report: MetricsReport; best: boolean }];
  checkpoint: [PublishedInfo];
  done: [{ reason: 'finished' | 'stopped'; iteration: number; maxIter: number; bestMeanIoU?: number | null }];
  crfProgress: [{ done: number; total: number; trial: CrfTrial }];
  crf: [CrfSearchResult];
  error: [Error & { phase?: string }];
  log: [string];
}

const BUSY: TrainingState[] = ['starting', 'running', 'pausing', 'paused', 'stopping', 'searching'];

export class TrainingController extends EventEmitter<ControllerEvents> {
  private worker?: Worker;
  private config?: TrainConfig;
  private st: TrainingStatus = { state: 'idle', iteration: 0, maxIter: 0, percent: 0 };
  private publishing: Promise<unknown> = Promise.resolve();
  private settled?: { promise: Promise<void>; resolve: () => void };

  constructor(private readonly opts: ControllerOptions = {}) {
    super();
  }

  get state(): TrainingState {
    return this.st.state;
  }

  get busy(): boolean {
    return BUSY.includes(this.st.state);
  }

  status(): TrainingStatus {
    return { ...this.st };
  }

  private setState(s: TrainingState): void {
    if (this.st.state === s) return;
    this.st.state = s;
    this.emit('state', s);
    if (!this.busy && this.settled) {
      this.settled.resolve();
      this.settled = undefined;
    }
  }

  /** Resolves when the current job (training and any CRF search after it) has ended. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    if (!this.settled) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.settled = { promise, resolve };
    }
    return this.settled.promise;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(path.join(__dirname, 'train-worker.js'), { workerData: { backend: this.opts.backend } });
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (err) => this.onWorkerGone(err));
    w.on('exit', (code) => {
      if (this.worker === w) this.onWorkerGone(new Error(`the training worker exited (code ${code})`));
    });
    this.worker = w;
    return w;
  }

  private onWorkerGone(err: Error): void {
    this.worker = undefined;
    if (this.busy) {
      this.st.error = err.message;
      this.setState('failed');
      this.emit('error', Object.assign(err, { phase: 'training' }));
    }
  }

  private send(m: ToWorker): void {
    this.ensureWorker().postMessage(m);
  }

  private refuseIfBusy(what: string): void {
    if (this.busy) {
      const s = this.st;
      const where = s.state === 'searching' ? 'a CRF search is running' : `training is ${s.state} (iteration ${s.iteration}/${s.maxIter})`;
      throw new Error(`cannot ${what}: ${where}; send "stop" first`);
    }
  }

  /** Starts a run. Throws if one is under way. */
  start(config: TrainConfig, resume: ResumeMode = 'auto', crfAfter?: CrfRequest): void {
    this.refuseIfBusy('start');
    this.config = config;
    this.st = { state: this.st.state, iteration: 0, maxIter: config.maxIter, percent: 0, backend: this.st.backend };
    this.setState('starting');
    this.send({ type: 'start', config, resume, crfAfter });
  }

  pause(): boolean {
    if (this.st.state !== 'running') return false;
    this.setState('pausing');
    this.send({ type: 'pause' });
    return true;
  }

  resume(): boolean {
    if (this.st.state !== 'paused' && this.st.state !== 'pausing') return false;
    this.send({ type: 'resume' });
    this.setState('running');
    return true;
  }

  /** Asks the run to stop after the current step (it writes a checkpoint); resolves when it has. */
  async stop(): Promise<boolean> {
    if (!this.busy) return false;
    if (this.st.state !== 'stopping') {
      this.setState('stopping');
      this.send({ type: 'stop' });
    }
    await this.whenIdle();
    await this.publishing;
    return true;
  }

  /** Grid search of the dense CRF on validation images with the trained model. */
  searchCrf(config: TrainConfig, request: CrfRequest = {}): void {
    this.refuseIfBusy('start a CRF search');
    this.config = config;
    this.st.crf = undefined;
    this.setState('searching');
    this.send({ type: 'crf', config, request });
  }

  private onMessage(m: FromWorker): void {
    const s = this.st;
    switch (m.type) {
      case 'ready':
        s.backend = m.backend;
        return;
      case 'started':
        s.iteration = m.info.iteration;
        s.maxIter = m.info.maxIter;
        s.percent = (100 * s.iteration) / s.maxIter;
        s.backend = m.info.backend;
        if (this.st.state === 'starting') this.setState('running');
        for (const n of m.info.notes) this.emit('log', n);
        this.emit('started', m.info);
        return;
      case 'progress': {
        const p = m.progress;
        Object.assign(s, { iteration: p.iteration, maxIter: p.maxIter, percent: p.percent, loss: p.loss, lr: p.lr, imagesPerSec: p.imagesPerSec, etaSeconds: p.etaSeconds });
        this.emit('progress', p);
        return;
      }
      case 'eval':
        s.lastMeanIoU = m.report.meanIoU;
        if (m.best) s.bestMeanIoU = m.report.meanIoU;
        this.emit('eval', { iteration: m.iteration, report: m.report, best: m.best });
        return;
      case 'checkpoint':
        s.lastCheckpoint = m.checkpoint.dir;
        this.publishing = this.publishing.then(() => this.publish(m.checkpoint));
        return;
      case 'paused':
        if (s.state === 'pausing') this.setState('paused');
        return;
      case 'resumed':
        return;
      case 'done':
        s.iteration = m.iteration;
        s.percent = (100 * m.iteration) / m.maxIter;
        // The 'done' event waits for the last checkpoint's publication.
        void this.publishing.then(() => {
          this.emit('done', { reason: m.reason, iteration: m.iteration, maxIter: m.maxIter, bestMeanIoU: m.bestMeanIoU });
        });
        // A CRF search may follow ("learn CRF next"): the job is not over yet.
        this.setState(m.crfNext ? 'searching' : m.reason === 'finished' ? 'finished' : 'stopped');
        return;
      case 'crf-started':
        s.crf = { done: 0, total: m.trials };
        this.setState('searching');
        return;
      case 'crf-progress':
        s.crf = { done: m.done, total: m.total };
        this.emit('crfProgress', { done: m.done, total: m.total, trial: m.trial });
        return;
      case 'crf':
        this.emit('crf', m.result);
        this.setState('finished');
        return;
      case 'log':
        this.emit('log', m.text);
        return;
      case 'error': {
        s.error = m.message;
        const err = Object.assign(new Error(m.message), { name: m.name, phase: m.phase });
        this.setState('failed');
        this.emit('error', err);
        return;
      }
    }
  }

  private async publish(c: CheckpointInfo): Promise<void> {
    let published = 0;
    let publishError: string | undefined;
    if (c.publishedDir && this.opts.publish && this.config) {
      try {
        published = await this.opts.publish(c.publishedDir, this.config);
      } catch (err) {
        publishError = (err as Error).message;
      }
    }
    this.emit('checkpoint', { ...c, published, publishError });
  }

  /** Stops any run (it checkpoints), waits up to `graceMs`, then ends the worker. */
  async close(graceMs = 30_000): Promise<void> {
    const w = this.worker;
    if (!w) return;
    if (this.busy) {
      await Promise.race([this.stop(), new Promise((r) => setTimeout(r, graceMs).unref())]);
    }
    this.worker = undefined;
    await w.terminate();
    if (this.busy) this.setState('stopped');
  }
}
