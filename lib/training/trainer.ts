/**
 * The training loop: SGD steps with gradient accumulation, validation, checkpoints and an
 * exact resume. Runs wherever tfjs runs (the train worker in Node-RED, the test thread in
 * tests); it only reads and writes files and reports through callbacks.
 */
import * as tf from '@tensorflow/tfjs';
import { alignsCorners } from '../inference/plan';
import { MetricsReport } from '../metrics/confusion';
import { DeepLab, sameNetwork } from '../models/deeplab';
import { Ctx } from '../models/layers';
import { normalize, padValueFor } from '../models/preprocess';
import { assignWeights, SavedWeights, serialize } from '../weights/format';
import { readWeights } from '../weights/load';
import { Rng, STREAM } from '../runtime/random';
import {
  clearCheckpoints, EvalRecord, findLatestCheckpoint, LoadedCheckpoint, publishCheckpoint, removeStaleTemps, writeCheckpoint, WriteHooks,
} from './checkpoint';
import { DataSpec, lossAtFor, TrainConfig } from './config';
import { Batch, BatchLoader, BatchRecipe, InlineLoader, openSource, SampleSource } from './data';
import { evaluate } from './evaluate';
import { LabelBatch, LossGeometry, mscLoss, segmentationLoss, sqrtInverseFrequencyWeights } from './loss';
import { Adam, Optimizer, OptimParam, paramRule, polyLr, SgdMomentum } from './optimizer';
import { WorkerLoader } from './worker-loader';

export interface StepResult {
  iteration: number;
  loss: number;
  lr: number;
  /** Time this step waited for data (ms): zero when loading keeps ahead. */
  dataWaitMs: number;
  stepMs: number;
}

export type StepPhase = 'data' | 'forward' | 'backward' | 'accumulate' | 'optimizer' | 'idle';

export interface ProgressInfo extends StepResult {
  maxIter: number;
  percent: number;
  imagesPerSec: number;
  etaSeconds: number;
  elapsedMs: number;
}

export interface EvalInfo {
  iteration: number;
  report: MetricsReport;
  best: boolean;
}

export interface CheckpointInfo {
  iteration: number;
  dir: string;
  /** The published folder (a link to `dir`) to hot-swap from, when publishing. */
  publishedDir?: string;
  reason: 'periodic' | 'final' | 'stop';
}

export interface TrainerEvents {
  onProgress?: (p: ProgressInfo) => void;
  onEval?: (e: EvalInfo) => void;
  onCheckpoint?: (c: CheckpointInfo) => void | Promise<void>;
  onLog?: (text: string) => void;
}

export interface RunControl {
  /** Set to stop after the current step (a checkpoint is written). */
  stopRequested: boolean;
  /** Awaited between steps; resolves when not paused. */
  waitWhilePaused?: () => Promise<void>;
}

export interface CreateOptions {
  /** 'auto' (default): continue from the newest checkpoint if there is one; 'never': start over (older checkpoints removed); 'require': fail without one. */
  resume?: 'auto' | 'never' | 'require';
  hooks?: WriteHooks;
  /** Where loaded weights come from when they are not the checkpoint's (default: the config's). */
  initialWeights?: SavedWeights;
}

/** Errors of the WebAssembly runtime that mean its memory is exhausted (its heap is at most 4 GB). */
export function isWasmMemoryError(err: unknown): boolean {
  const m = err instanceof Error ? `${err.name} ${err.message}` : String(err);
  return /Aborted\(|memory access out of bounds|out of memory|Cannot enlarge memory|RangeError: WebAssembly/i.test(m);
}

/** The config as stored in a checkpoint: in-memory samples recorded by count only. */
function storableConfig(c: TrainConfig): TrainConfig {
  const strip = (d?: DataSpec): DataSpec | undefined =>
    d && d.kind === 'memory' ? ({ kind: 'memory', samples: [], count: d.samples.length } as unknown as DataSpec) : d;
  return { ...c, train: strip(c.train)!, val: strip(c.val) };
}

/** Pixels per class in up to `limit` images spread over the training set (void and out-of-range labels skipped). */
async function classCounts(spec: DataSpec, classes: number, limit = 64): Promise<number[]> {
  const source = await openSource(spec);
  const counts = new Array<number>(classes).fill(0);
  const n = Math.min(limit, source.count);
  for (let k = 0; k < n; k++) {
    const { label } = await source.get(Math.floor((k * source.count) / n));
    for (const v of label.data) if (v < classes) counts[v]++;
  }
  return counts;
}

export class Trainer {
  iteration = 0;
  readonly model: DeepLab;
  private readonly optimizer: Optimizer;
  private readonly params: OptimParam[];
  private readonly byVarName = new Map<string, string>();
  private loader?: BatchLoader;
  private valSource?: SampleSource;
  private elapsedMs = 0;
  private lastLoss?: number;
  private readonly evals: EvalRecord[] = [];
  private best?: EvalRecord;
  private readonly recent: number[] = [];
  private geometry: LossGeometry;
  /** Where this run resumed from, if it did. */
  resumedFrom?: string;
  /** Notes for the user (skipped weights, config changes across a resume). */
  readonly notes: string[] = [];
  /** Called as a step moves between its parts (bench/train-profile times kernels by phase). */
  onPhase?: (phase: StepPhase) => void;

  private constructor(readonly config: TrainConfig, model: DeepLab, private readonly hooks: WriteHooks) {
    this.model = model;
    const c = config;
    this.params = [];
    for (const [name, variable] of model.store.trainable) {
      const rule = paramRule(name, c);
      // Frozen BN keeps its scale and shift too (the recipe's BN layers have lr 0).
      if (c.freezeBN && /-bn$/.test(rule.group)) continue;
      if (rule.lrMult === 0) continue;
      this.params.push({ name, variable, lrMult: rule.lrMult, decayMult: rule.decayMult });
      this.byVarName.set(variable.name, name);
    }
    this.optimizer = c.optimizer === 'adam' ? new Adam(this.params, c.weightDecay) : new SgdMomentum(this.params, c.momentum, c.weightDecay);
    this.geometry = {
      at: lossAtFor(model.spec, c.lossAt), alignCorners: alignsCorners(model.spec),
      classWeights: Array.isArray(c.classWeights) ? c.classWeights : undefined,
    };
  }

  static async create(config: TrainConfig, o: CreateOptions = {}): Promise<Trainer> {
    const mode = o.resume ?? 'auto';
    let ckpt: LoadedCheckpoint | undefined;
    if (config.checkpointDir) {
      // Leftovers of a killed run go first (a live writer's are kept: see checkpoint.ts).
      removeStaleTemps(config.checkpointDir);
      if (mode === 'never') clearCheckpoints(config.checkpointDir);
      else ckpt = findLatestCheckpoint(config.checkpointDir);
    }
    if (mode === 'require' && !ckpt) throw new Error(`no checkpoint to resume from in ${config.checkpointDir ?? '(no checkpoint folder set)'}`);
    if (ckpt && !sameNetwork(ckpt.saved.manifest.spec, config.model.spec)) {
      throw new Error(`the checkpoint folder ${config.checkpointDir} holds a different network ` +
        `(${ckpt.saved.manifest.spec.variant} ${ckpt.saved.manifest.spec.backbone}, ${ckpt.saved.manifest.spec.classes} classes): ` +
        'restart from scratch or choose another checkpoint folder');
    }
    const model = new DeepLab(config.model.spec);
    let trainer: Trainer | undefined;
    try {
      trainer = new Trainer(config, model, o.hooks ?? {});
      if (ckpt) trainer.restore(ckpt);
      else {
        const init = o.initialWeights ?? await readWeights(config.init ?? config.model.weights).catch((err: Error) => {
          if (config.initHint) err.message = `${err.message}; ${config.initHint}`;
          throw err;
        });
        if (init) {
          const { loaded, skipped } = assignWeights(model, init, { partial: true });
          if (loaded === 0) throw new Error('the initial weights share no parameter (name and shape) with this network');
          if (skipped.length) trainer.notes.push(`initial weights: ${skipped.length} parameter(s) left at their initialisation (${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ', ...' : ''})`);
        }
      }
      if (config.val) trainer.valSource = await openSource(config.val);
      if (config.classWeights === 'sqrt-inverse') {
        const weights = sqrtInverseFrequencyWeights(await classCounts(config.train, config.model.spec.classes));
        trainer.geometry = { ...trainer.geometry, classWeights: weights };
        trainer.notes.push(`class weights (1/sqrt of frequency): ${weights.map((w) => w.toFixed(2)).join(', ')}`);
      }
      return trainer;
    } catch (err) {
      trainer?.dispose();
      if (!trainer) model.dispose();
      throw err;
    }
  }

  private restore(ck: LoadedCheckpoint): void {
    assignWeights(this.model, ck.saved, { partial: true });
    this.optimizer.importState(ck.optimizer);
    const s = ck.state;
    this.iteration = s.iteration;
    this.elapsedMs = s.elapsedMs ?? 0;
    this.lastLoss = s.metrics?.loss;
    this.evals.push(...(s.metrics?.evals ?? []));
    this.best = s.metrics?.best;
    this.resumedFrom = ck.dir;
    if (s.iteration >= this.config.maxIter) {
      this.notes.push(`the checkpoint is at iteration ${s.iteration} and the run has ${this.config.maxIter}: nothing left to train (raise the iterations, or restart)`);
    }
    const old = s.config;
    const changed = (['seed', 'optimizer', 'batchSize', 'iterSize', 'cropSize', 'scaleMin', 'scaleMax', 'mirror'] as const).filter((k) => old && old[k] !== this.config[k]);
    if (changed.length) this.notes.push(`resumed with changed ${changed.join(', ')}: the run continues, but not as an uninterrupted run would have`);
  }

  get maxIter(): number {
    return this.config.maxIter;
  }

  get finished(): boolean {
    return this.iteration >= this.config.maxIter;
  }

  get parameterCount(): number {
    return this.model.paramCount();
  }

  get bestEval(): EvalRecord | undefined {
    return this.best;
  }

  private recipe(): BatchRecipe {
    const c = this.config;
    return {
      batchSize: c.batchSize,
      seed: c.seed,
      classes: c.model.spec.classes,
      augment: {
        cropHeight: c.cropSize, cropWidth: c.cropSize, scaleMin: c.scaleMin, scaleMax: c.scaleMax, mirror: c.mirror,
        padValue: padValueFor(c.model.preprocessing), ignoreIndex: 255,
      },
    };
  }

  private async ensureLoader(): Promise<BatchLoader> {
    if (!this.loader) {
      const c = this.config;
      const start = this.iteration * c.iterSize;
      this.loader = c.dataWorker
        ? new WorkerLoader(c.train, this.recipe(), start, c.prefetch)
        : new InlineLoader(await openSource(c.train), this.recipe(), start, c.prefetch);
    }
    return this.loader;
  }

  private lossOf(batch: Batch, ctx: Ctx): tf.Scalar {
    const { n, height: H, width: W } = batch;
    const x = normalize(tf.tensor4d(batch.images, [n, H, W, 3], 'float32'), this.config.model.preprocessing);
    const labels: LabelBatch = { data: batch.labels, n, height: H, width: W };
    if (this.config.msc) return mscLoss((xi) => this.model.forward(xi, ctx).logits, x, labels, this.geometry);
    const out = this.model.forward(x, ctx);
    const loss = segmentationLoss(out.logits, labels, this.geometry);
    if (out.aux && this.config.auxWeight > 0) return tf.add(loss, tf.mul(segmentationLoss(out.aux, labels, this.geometry), this.config.auxWeight));
    return loss;
  }

  /** One iteration: iterSize forward/backward passes, accumulated, then one SGD update. */
  async step(): Promise<StepResult> {
    const c = this.config;
    const loader = await this.ensureLoader();
    const t0 = performance.now();
    const lr = polyLr(c.lr, this.iteration, c.maxIter, c.lrPower, c.warmupIter);
    const vars = this.params.map((p) => p.variable);
    const acc = new Map<string, tf.Tensor>();
    let lossSum = 0;
    let waitMs = 0;
    try {
      for (let sub = 0; sub < c.iterSize; sub++) {
        this.onPhase?.('data');
        const w0 = performance.now();
        const batch = await loader.next();
        waitMs += performance.now() - w0;
        const seq = this.iteration * c.iterSize + sub;
        const dropout = Rng.at(c.seed, STREAM.dropout, seq);
        const ctx: Ctx = { training: true, freezeBN: c.freezeBN, statUpdates: [], dropoutSeed: () => Math.floor(dropout.next() * 2 ** 32) };
        let result: { value: tf.Scalar; grads: tf.NamedTensorMap };
        try {
          result = tf.variableGrads(() => {
            this.onPhase?.('forward');
            const loss = this.lossOf(batch, ctx);
            this.onPhase?.('backward');
            return loss;
          }, vars);
        } catch (err) {
          if (!isWasmMemoryError(err) || tf.getBackend() !== 'wasm') throw err;
          throw new Error(`the WebAssembly backend ran out of memory (its heap is limited to 4 GB) training ${c.batchSize} image(s) of ` +
            `${c.cropSize}x${c.cropSize} per pass: lower the batch size and raise iter size by the same factor (the same effective batch), ` +
            `or use a smaller crop (${(err as Error).message})`);
        } finally {
          // Running statistics move on every forward pass (as PyTorch's BN in train mode).
          for (const u of ctx.statUpdates ?? []) {
            u.variable.assign(u.value);
            u.value.dispose();
          }
        }
        this.onPhase?.('accumulate');
        lossSum += (await result.value.data())[0];
        result.value.dispose();
        for (const [varName, g] of Object.entries(result.grads)) {
          const name = this.byVarName.get(varName);
          if (!name) {
            g.dispose();
            continue;
          }
          const scaled = c.iterSize > 1 ? tf.tidy(() => tf.div(g, c.iterSize)) : g;
          if (scaled !== g) g.dispose();
          const prev = acc.get(name);
          if (prev) {
            acc.set(name, tf.tidy(() => tf.add(prev, scaled)));
            prev.dispose();
            scaled.dispose();
          } else acc.set(name, scaled);
        }
      }
      const loss = lossSum / c.iterSize;
      if (!Number.isFinite(loss)) {
        throw new Error(`the loss became ${loss} at iteration ${this.iteration + 1}: lower the learning rate (now ${lr.toExponential(3)})`);
      }
      this.onPhase?.('optimizer');
      this.optimizer.apply(acc, lr, this.iteration + 1);
      this.onPhase?.('idle');
      this.iteration++;
      this.lastLoss = loss;
      const stepMs = performance.now() - t0;
      this.elapsedMs += stepMs;
      this.recent.push(stepMs);
      if (this.recent.length > 20) this.recent.shift();
      return { iteration: this.iteration, loss, lr, dataWaitMs: waitMs, stepMs };
    } finally {
      for (const t of acc.values()) t.dispose();
    }
  }

  /** Progress figures after a step: images/s and ETA from the recent steps. */
  progress(s: StepResult): ProgressInfo {
    const c = this.config;
    const mean = this.recent.reduce((a, b) => a + b, 0) / Math.max(1, this.recent.length);
    const images = c.batchSize * c.iterSize;
    return {
      ...s,
      maxIter: c.maxIter,
      percent: (100 * this.iteration) / c.maxIter,
      imagesPerSec: mean > 0 ? (1000 * images) / mean : 0,
      etaSeconds: ((c.maxIter - this.iteration) * mean) / 1000,
      elapsedMs: this.elapsedMs,
    };
  }

  /** Validation mIoU on the configured subset. */
  async evaluate(): Promise<EvalInfo> {
    if (!this.valSource) throw new Error('no validation data configured');
    const c = this.config;
    const report = await evaluate(this.model, c.model.preprocessing, this.valSource, { limit: c.evalLimit, rule: c.evalRule, classNames: c.model.classNames });
    const rec: EvalRecord = { iteration: this.iteration, meanIoU: report.meanIoU, pixelAccuracy: report.pixelAccuracy };
    this.evals.push(rec);
    if (this.evals.length > 1000) this.evals.shift();
    const isBest = report.meanIoU !== null && (!this.best || (this.best.meanIoU ?? -1) < report.meanIoU);
    if (isBest) this.best = rec;
    return { iteration: this.iteration, report, best: isBest };
  }

  get hasValidation(): boolean {
    return !!this.valSource;
  }

  get validationSource(): SampleSource | undefined {
    return this.valSource;
  }

  /** Writes a checkpoint and publishes it (when configured); requires checkpointDir. */
  async checkpoint(reason: CheckpointInfo['reason'] = 'periodic'): Promise<CheckpointInfo> {
    const c = this.config;
    if (!c.checkpointDir) throw new Error('no checkpoint folder configured');
    const saved = await serialize(this.model, c.model.preprocessing, {
      classNames: c.model.classNames,
      meta: { iteration: this.iteration, maxIter: c.maxIter, loss: this.lastLoss, meanIoU: this.best?.meanIoU, trainedBy: '@nr-vision/node-red-deeplab train', savedAt: new Date().toISOString() },
    });
    const optimizer = await this.optimizer.exportState();
    const dir = await writeCheckpoint(c.checkpointDir, {
      saved,
      optimizer,
      state: {
        iteration: this.iteration,
        config: storableConfig(c),
        rng: { scheme: 'counter', seed: c.seed, samplesSeen: this.iteration * c.iterSize * c.batchSize },
        metrics: { loss: this.lastLoss, evals: this.evals.slice(-200), best: this.best },
        elapsedMs: this.elapsedMs,
      },
    }, c.keep, this.hooks);
    const publishedDir = c.publish ? publishCheckpoint(c.checkpointDir, dir) : undefined;
    return { iteration: this.iteration, dir, publishedDir, reason };
  }

  /**
   * Trains to maxIter (or until stopped), with progress, validation and checkpoints as
   * configured. A stop or the end writes a checkpoint when a folder is set.
   */
  async run(control: RunControl, ev: TrainerEvents = {}): Promise<'finished' | 'stopped'> {
    const c = this.config;
    let lastEval = -1;
    // A run resumed from a checkpoint does not write the same one again.
    let lastCkpt = this.resumedFrom ? this.iteration : -1;
    const doEval = async () => {
      if (!this.valSource || lastEval === this.iteration) return;
      lastEval = this.iteration;
      // (Evaluated first: an optional call would skip evaluating its argument.)
      const e = await this.evaluate();
      ev.onEval?.(e);
    };
    const doCheckpoint = async (reason: CheckpointInfo['reason']) => {
      if (!c.checkpointDir || lastCkpt === this.iteration) return;
      lastCkpt = this.iteration;
      const info = await this.checkpoint(reason);
      await ev.onCheckpoint?.(info);
    };
    if (this.resumedFrom && this.iteration >= c.maxIter && c.checkpointDir && c.publish) {
      // Nothing left to train, but the weights still go to the running models (after a
      // Node-RED restart the cache holds fresh, untrained ones): the checkpoint it resumed from.
      await ev.onCheckpoint?.({ iteration: this.iteration, dir: this.resumedFrom, publishedDir: publishCheckpoint(c.checkpointDir, this.resumedFrom), reason: 'final' });
    }
    while (this.iteration < c.maxIter) {
      await control.waitWhilePaused?.();
      if (control.stopRequested) break;
      const s = await this.step();
      if (this.iteration % c.progressEvery === 0 || this.iteration === c.maxIter) ev.onProgress?.(this.progress(s));
      if (c.evalEvery > 0 && this.iteration % c.evalEvery === 0) await doEval();
      if (c.checkpointEvery > 0 && this.iteration % c.checkpointEvery === 0) await doCheckpoint('periodic');
      // Let control messages in between steps.
      await new Promise<void>((r) => setImmediate(r));
    }
    const stopped = this.iteration < c.maxIter;
    if (!stopped) await doEval();
    await doCheckpoint(stopped ? 'stop' : 'final');
    return stopped ? 'stopped' : 'finished';
  }

  async close(): Promise<void> {
    await this.loader?.close();
    this.loader = undefined;
  }

  dispose(): void {
    void this.loader?.close();
    this.loader = undefined;
    this.optimizer.dispose();
    this.model.dispose();
  }
}
