/**
 * Per-kernel timing of a backend whose kernels run synchronously (wasm, cpu): every registered
 * kernel of the backend is wrapped with a timer. Self time excludes kernels run inside a kernel
 * (our composite gradient kernels call other kernels), so the self times add up to the time
 * spent in kernels; the phase (set by the caller) splits it by forward / backward / ...
 * Bench-only: it re-registers kernels and never undoes it.
 */
import { performance } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';

export interface KernelRow {
  phase: string;
  kernel: string;
  calls: number;
  selfMs: number;
}

export class KernelProfile {
  phase = 'other';
  private readonly rows = new Map<string, KernelRow>();
  private readonly phaseMs = new Map<string, number>();
  private phaseStart = performance.now();
  private depth = 0;
  private childMs = 0;
  private readonly stack: string[] = [];
  enabled = false;
  /** Name rows by the kernels' input shapes too (BENCH_SHAPES=1 in bench/train-profile). */
  byShape = false;

  constructor(backend = tf.getBackend()) {
    for (const k of tf.getKernelsForBackend(backend)) {
      const inner = k.kernelFunc;
      const wrapped = ((args: Parameters<tf.KernelFunc>[0]) => {
        if (!this.enabled) return inner(args);
        const t0 = performance.now();
        const outerChild = this.childMs;
        this.childMs = 0;
        this.depth++;
        this.stack.push(k.kernelName);
        try {
          return inner(args);
        } finally {
          this.depth--;
          this.stack.pop();
          const total = performance.now() - t0;
          // A kernel run inside another is named after its caller too ("Conv2DBackpropFilter>MatMul").
          let name = this.stack.length ? `${this.stack[this.stack.length - 1]}>${k.kernelName}` : k.kernelName;
          if (this.byShape) name += ' ' + Object.values(args.inputs).map((t) => `[${(t as tf.TensorInfo | undefined)?.shape ?? ''}]`).join('');
          const key = `${this.phase}/${name}`;
          const row = this.rows.get(key) ?? { phase: this.phase, kernel: name, calls: 0, selfMs: 0 };
          row.calls++;
          row.selfMs += total - this.childMs;
          this.rows.set(key, row);
          this.childMs = outerChild + total;
        }
      }) as tf.KernelFunc;
      // Keep markers (registerTrainingKernels recognises its own kernels by them).
      Object.assign(wrapped, inner);
      tf.unregisterKernel(k.kernelName, backend);
      tf.registerKernel({ ...k, kernelFunc: wrapped });
    }
  }

  setPhase(p: string): void {
    const now = performance.now();
    if (this.enabled) this.phaseMs.set(this.phase, (this.phaseMs.get(this.phase) ?? 0) + now - this.phaseStart);
    this.phaseStart = now;
    this.phase = p;
  }

  reset(): void {
    this.rows.clear();
    this.phaseMs.clear();
    this.phaseStart = performance.now();
  }

  /** A table: phases (wall, in kernels, outside kernels), then the top kernels by self time. */
  report(divideBy = 1, top = 25): string {
    const lines: string[] = [];
    const inKernels = new Map<string, number>();
    for (const r of this.rows.values()) inKernels.set(r.phase, (inKernels.get(r.phase) ?? 0) + r.selfMs);
    lines.push('phase          wall ms   kernels ms   outside kernels ms');
    let total = 0;
    for (const [p, ms] of this.phaseMs) {
      total += ms;
      const k = inKernels.get(p) ?? 0;
      lines.push(`${p.padEnd(12)} ${(ms / divideBy).toFixed(1).padStart(9)} ${(k / divideBy).toFixed(1).padStart(12)} ${((ms - k) / divideBy).toFixed(1).padStart(20)}`);
    }
    lines.push(`${'total'.padEnd(12)} ${(total / divideBy).toFixed(1).padStart(9)}`);
    lines.push('', 'top kernels (self time)    phase      calls   ms    % of total');
    const rows = [...this.rows.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top);
    for (const r of rows) {
      lines.push(`${r.kernel.padEnd(this.byShape ? 90 : 50)} ${r.phase.padEnd(9)} ${(r.calls / divideBy).toFixed(0).padStart(6)} ${(r.selfMs / divideBy).toFixed(1).padStart(8)} ${((100 * r.selfMs) / total).toFixed(1).padStart(6)}`);
    }
    return lines.join('\n');
  }
}
