/**
 * Named parameters of a network. Trainable weights (conv kernels, biases, BN scale/shift)
 * and running statistics (BN mean/variance) are kept apart: published parameter counts
 * include the former only, and optimisers see only the former.
 */
import * as tf from '@tensorflow/tfjs';

export type Init =
  | { kind: 'he'; fanIn: number }
  | { kind: 'normal'; std: number }
  | { kind: 'const'; value: number };

let nextStoreId = 1;

export class ParamStore {
  /** tfjs registers variable names engine-wide: each store prefixes its own. */
  private readonly uid = `deeplab${nextStoreId++}`;
  readonly trainable = new Map<string, tf.Variable>();
  readonly stats = new Map<string, tf.Variable>();
  private seed: number;

  constructor(seed = 1) {
    this.seed = seed;
  }

  /** A trainable weight, created once per name. */
  weight(name: string, shape: number[], init: Init): tf.Variable {
    return this.create(this.trainable, name, shape, init, true);
  }

  /** A non-trainable statistic (BN running mean / variance). */
  stat(name: string, shape: number[], value: number): tf.Variable {
    return this.create(this.stats, name, shape, { kind: 'const', value }, false);
  }

  private create(into: Map<string, tf.Variable>, name: string, shape: number[], init: Init, trainable: boolean): tf.Variable {
    if (this.trainable.has(name) || this.stats.has(name)) throw new Error(`duplicate parameter name ${name}`);
    const v = tf.tidy(() => {
      let t: tf.Tensor;
      if (init.kind === 'const') t = tf.fill(shape, init.value);
      // He (Kaiming) normal for ReLU networks, seeded so a model is reproducible.
      else if (init.kind === 'he') t = tf.randomNormal(shape, 0, Math.sqrt(2 / init.fanIn), 'float32', this.seed++);
      else t = tf.randomNormal(shape, 0, init.std, 'float32', this.seed++);
      return tf.variable(t, trainable, `${this.uid}/${name}`);
    });
    into.set(name, v);
    return v;
  }

  /** Number of trainable scalars (the figure papers and torchvision publish). */
  countTrainable(): number {
    let n = 0;
    for (const v of this.trainable.values()) n += v.size;
    return n;
  }

  /** Every parameter by name, trainable first then statistics, in creation order. */
  all(): [string, tf.Variable][] {
    return [...this.trainable.entries(), ...this.stats.entries()];
  }

  dispose(): void {
    for (const [, v] of this.all()) v.dispose();
    this.trainable.clear();
    this.stats.clear();
  }
}
