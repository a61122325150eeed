/**
 * SGD with momentum (the published recipes) or Adam (the small-data CPU recipe) over parameter
 * groups, with the poly schedule and an optional linear warm-up.
 *
 * Update (PyTorch's SGD, as kazuto1011's deeplab-pytorch uses it), per parameter w with
 * learning-rate multiplier m and weight-decay multiplier d:
 *   g   <- grad + weightDecay * d * w
 *   buf <- momentum * buf + g
 *   w   <- w - lr * m * buf
 * Groups by name: backbone.* at backboneLrMult (x1), head.* and aux.* at headLrMult (x10);
 * conv biases at biasLrFactor times their group (x2: head biases x20) without weight decay;
 * BN scale/shift without weight decay unless bnDecay.
 */
import * as tf from '@tensorflow/tfjs';
import { adamStepSimd, sgdStepSimd } from '../engine/optimizer-wasm';
import { TrainConfig } from './config';

/**
 * Poly learning rate: base * (1 - iter / maxIter)^power, times a linear warm-up
 * (iter + 1) / warmupIter over the first warmupIter iterations (none when 0).
 */
export function polyLr(base: number, iter: number, maxIter: number, power: number, warmupIter = 0): number {
  const f = Math.max(0, 1 - iter / maxIter);
  const warm = iter < warmupIter ? (iter + 1) / warmupIter : 1;
  return base * Math.pow(f, power) * warm;
}

export type GroupName = 'backbone' | 'backbone-bias' | 'backbone-bn' | 'head' | 'head-bias' | 'head-bn';

export interface ParamRule {
  group: GroupName;
  lrMult: number;
  decayMult: number;
}

type GroupCfg = Pick<TrainConfig, 'backboneLrMult' | 'headLrMult' | 'biasLrFactor' | 'biasDecay' | 'bnDecay'>;

/** The group of a parameter from its name (see the module comment). */
export function paramRule(name: string, c: GroupCfg): ParamRule {
  const head = !name.startsWith('backbone.');
  const base = head ? c.headLrMult : c.backboneLrMult;
  const prefix = head ? 'head' : 'backbone';
  if (/\.(gamma|beta)$/.test(name)) return { group: `${prefix}-bn`, lrMult: base, decayMult: c.bnDecay ? 1 : 0 };
  if (name.endsWith('.bias')) return { group: `${prefix}-bias`, lrMult: base * c.biasLrFactor, decayMult: c.biasDecay ? 1 : 0 };
  return { group: prefix, lrMult: base, decayMult: 1 };
}

export interface OptimParam {
  name: string;
  variable: tf.Variable;
  lrMult: number;
  decayMult: number;
}

export interface OptimizerState {
  entries: { name: string; shape: number[]; offset: number }[];
  data: Float32Array;
}

/** What the trainer needs of an optimiser. */
export interface Optimizer {
  /** One update with these gradients (by parameter name) at learning rate lr; `step` counts from 1. */
  apply(grads: Map<string, tf.Tensor>, lr: number, step: number): void;
  exportState(): Promise<OptimizerState>;
  importState(s: OptimizerState): void;
  dispose(): void;
}

/** Per-parameter float32 buffers, saved in checkpoints by name (with a suffix per kind of buffer). */
class Buffers {
  private readonly map = new Map<string, tf.Variable>();

  constructor(readonly params: OptimParam[], readonly suffixes: string[]) {
    for (const p of params) {
      for (const s of suffixes) this.map.set(p.name + s, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
    }
  }

  get(name: string): tf.Variable {
    return this.map.get(name)!;
  }

  async exportState(): Promise<OptimizerState> {
    const entries: OptimizerState['entries'] = [];
    let total = 0;
    for (const p of this.params) {
      for (const s of this.suffixes) {
        entries.push({ name: p.name + s, shape: p.variable.shape, offset: total });
        total += p.variable.size;
      }
    }
    const data = new Float32Array(total);
    for (const e of entries) data.set((await this.map.get(e.name)!.data()) as Float32Array, e.offset);
    return { entries, data };
  }

  /** Restores buffers by name; a buffer absent from the state stays zero. */
  importState(s: OptimizerState): void {
    const byName = new Map(s.entries.map((e) => [e.name, e]));
    for (const p of this.params) {
      for (const suffix of this.suffixes) {
        const name = p.name + suffix;
        const e = byName.get(name);
        if (!e) continue;
        if (e.shape.join('x') !== p.variable.shape.join('x')) {
          throw new Error(`optimizer state of ${name} has shape [${e.shape}], the parameter [${p.variable.shape}]`);
        }
        const n = p.variable.size;
        if (e.offset + n > s.data.length) throw new Error(`optimizer state is truncated at ${name}`);
        tf.tidy(() => this.map.get(name)!.assign(tf.tensor(s.data.subarray(e.offset, e.offset + n), p.variable.shape, 'float32')));
      }
    }
  }

  dispose(): void {
    for (const b of this.map.values()) b.dispose();
    this.map.clear();
  }
}

/**
 * Adam (Kingma & Ba) with bias correction and decoupled weight decay (AdamW: w <- w - lr * m * wd * d * w),
 * which, unlike an L2 term in the gradient, is not rescaled away by the second moment. Buffers:
 * first moments under the parameter's name, second moments under name + "#v"; the step count is
 * the iteration, which a checkpoint restores.
 */
export class Adam implements Optimizer {
  private readonly buffers: Buffers;

  constructor(readonly params: OptimParam[], readonly weightDecay: number, readonly beta1 = 0.9, readonly beta2 = 0.999, readonly epsilon = 1e-8) {
    this.buffers = new Buffers(params, ['', '#v']);
  }

  apply(grads: Map<string, tf.Tensor>, lr: number, step: number): void {
    const c1 = 1 - Math.pow(this.beta1, step);
    const c2 = 1 - Math.pow(this.beta2, step);
    for (const p of this.params) {
      const g = grads.get(p.name);
      if (!g) continue;
      const m = this.buffers.get(p.name);
      const v = this.buffers.get(p.name + '#v');
      const rate = lr * p.lrMult;
      // On wasm one SIMD pass per parameter (lib/engine/optimizer-wasm).
      const fused = adamStepSimd(p.variable, g, m, v, {
        beta1: this.beta1, beta2: this.beta2, a: rate / c1, b: 1 / c2, epsilon: this.epsilon, lrwd: rate * this.weightDecay * p.decayMult,
      });
      if (fused) {
        p.variable.assign(fused[0]);
        m.assign(fused[1]);
        v.assign(fused[2]);
        tf.dispose(fused);
        continue;
      }
      tf.tidy(() => {
        const mNext = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const vNext = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(mNext);
        v.assign(vNext);
        let update = tf.div(tf.mul(mNext, rate / c1), tf.add(tf.sqrt(tf.div(vNext, c2)), this.epsilon));
        const wd = this.weightDecay * p.decayMult;
        if (wd > 0) update = tf.add(update, tf.mul(p.variable, rate * wd));
        p.variable.assign(tf.sub(p.variable, update));
      });
    }
  }

  exportState(): Promise<OptimizerState> {
    return this.buffers.exportState();
  }

  importState(s: OptimizerState): void {
    this.buffers.importState(s);
  }

  dispose(): void {
    this.buffers.dispose();
  }
}

export class SgdMomentum implements Optimizer {
  private readonly buffers = new Map<string, tf.Variable>();

  constructor(readonly params: OptimParam[], readonly momentum: number, readonly weightDecay: number) {
    for (const p of params) {
      this.buffers.set(p.name, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
    }
  }

  /** One update with these gradients (by parameter name) at learning rate lr. */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    for (const p of this.params) {
      const g = grads.get(p.name);
      if (!g) continue;
      const buf = this.buffers.get(p.name)!;
      const fused = sgdStepSimd(p.variable, g, buf, lr * p.lrMult, this.momentum, this.weightDecay * p.decayMult);
      if (fused) {
        p.variable.assign(fused[0]);
        buf.assign(fused[1]);
        tf.dispose(fused);
        continue;
      }
      tf.tidy(() => {
        const wd = this.weightDecay * p.decayMult;
        const d = wd > 0 ? tf.add(g, tf.mul(p.variable, wd)) : g;
        const next = this.momentum > 0 ? tf.add(tf.mul(buf, this.momentum), d) : d;
        buf.assign(next);
        p.variable.assign(tf.sub(p.variable, tf.mul(next, lr * p.lrMult)));
      });
    }
  }

  /** Momentum buffers as one float32 block (for checkpoints). */
  async exportState(): Promise<OptimizerState> {
    const entries: OptimizerState['entries'] = [];
    let total = 0;
    for (const p of this.params) {
      entries.push({ name: p.name, shape: p.variable.shape, offset: total });
      total += p.variable.size;
    }
    const data = new Float32Array(total);
    for (let i = 0; i < this.params.length; i++) {
      data.set((await this.buffers.get(this.params[i].name)!.data()) as Float32Array, entries[i].offset);
    }
    return { entries, data };
  }

  /** Restores buffers by name; a parameter absent from the state keeps a zero buffer. */
  importState(s: OptimizerState): void {
    const byName = new Map(s.entries.map((e) => [e.name, e]));
    for (const p of this.params) {
      const e = byName.get(p.name);
      if (!e) continue;
      if (e.shape.join('x') !== p.variable.shape.join('x')) {
        throw new Error(`optimizer state of ${p.name} has shape [${e.shape}], the parameter [${p.variable.shape}]`);
      }
      const n = p.variable.size;
      if (e.offset + n > s.data.length) throw new Error(`optimizer state is truncated at ${p.name}`);
      tf.tidy(() => this.buffers.get(p.name)!.assign(tf.tensor(s.data.subarray(e.offset, e.offset + n), p.variable.shape, 'float32')));
    }
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
