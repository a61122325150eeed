/**
 * SGD with momentum and weight decay over parameter groups, with the poly schedule.
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
import { TrainConfig } from './config';

/** Poly learning rate: base * (1 - iter / maxIter)^power. */
export function polyLr(base: number, iter: number, maxIter: number, power: number): number {
  const f = Math.max(0, 1 - iter / maxIter);
  return base * Math.pow(f, power);
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

export class SgdMomentum {
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
