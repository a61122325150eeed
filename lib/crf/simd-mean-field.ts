/**
 * Mean field on the SIMD kernels (simd.ts): lays the lattices, the prior, Q and the messages
 * out in one WebAssembly memory, runs the iterations for one part of the classes, and reads the
 * result back. The plan is plain numbers, so a helper thread given the (shared) memory and the
 * plan runs the other part on the same data.
 */
import { LatticeGeometry } from './lattice';
import { CrfKernel } from './mean-field';
import { Arena } from './arena';
import { SimdExports, SimdShape, simdInstance } from './simd';

export interface SimdKernelPlan {
  d1: number;
  m: number;
  weight: number;
  offsets: number;
  weights: number;
  chains: number;
  chainStart: number[];
  pairs: number; // 0 when blurred along chains
  /** Per part: value rows ((m + 1) x nv vectors), and the second buffer when blurred by pairs. */
  values: number[];
  spare: number[];
}

export interface SimdPlan {
  n: number;
  C: number;
  parts: { c0: number; ct: number; nv: number }[];
  /** Floats per pixel row of Q and the prior (all parts, padded). */
  rowFloats: number;
  prior: number;
  Q: number;
  msgs: number[];
  kernels: SimdKernelPlan[];
  shape: SimdShape;
}

/**
 * Lays everything out and copies the lattices in. With prior and Q0 given, also writes every
 * part's padded rows (else each thread writes its own part with fillPart).
 */
export function planSimd(n: number, C: number, parts: { c0: number; ct: number }[], kernels: CrfKernel[], prior?: Float32Array,
  Q0?: Float32Array, zeroRows = true, into?: Arena): { arena: Arena; plan: SimdPlan } {
  const geos = kernels.map((k) => {
    if (k.kind !== 'lattice') throw new Error('SIMD mean field needs lattice kernels');
    return k.g;
  });
  const ps = parts.map((p) => ({ ...p, nv: Math.ceil(p.ct / 4) }));
  const rowFloats = ps.reduce((a, p) => a + 4 * p.nv, 0);
  // geometry built into this arena already (lattice-wasm.ts) is used where it lies
  const inPlace = (g: LatticeGeometry) => !!into && g.placed?.memory === into.memory;
  const sizes: number[] = [n * rowFloats * 4, n * rowFloats * 4, ...ps.map((p) => n * p.nv * 16)];
  for (const g of geos) {
    if (!inPlace(g)) sizes.push(n * (g.d + 1) * 4, n * (g.d + 1) * 4, g.chains.length * 4, g.pairs ? g.pairs.length * 4 : 0);
    for (const p of ps) sizes.push((g.m + 1) * p.nv * 16, g.pairs ? (g.m + 1) * p.nv * 16 : 0);
  }
  let arena: Arena;
  if (into) {
    arena = into;
    arena.reserve(arena.next + Arena.size(sizes));
  } else {
    arena = Arena.acquire(Arena.size(sizes));
  }
  const plan: SimdPlan = {
    n,
    C,
    parts: ps,
    rowFloats,
    prior: arena.alloc(n * rowFloats * 4),
    Q: arena.alloc(n * rowFloats * 4),
    msgs: ps.map((p) => arena.alloc(n * p.nv * 16)),
    kernels: [],
    shape: { d1s: geos.map((g) => g.d + 1), nvs: ps.map((p) => p.nv) },
  };
  kernels.forEach((k, i) => {
    const g: LatticeGeometry = geos[i];
    const d1 = g.d + 1;
    const placed = inPlace(g) ? g.placed! : undefined;
    const kp: SimdKernelPlan = {
      d1,
      m: g.m,
      weight: k.weight,
      offsets: placed ? placed.offsets : arena.alloc(n * d1 * 4),
      weights: placed ? placed.weights : arena.alloc(n * d1 * 4),
      chains: placed ? placed.chains : arena.alloc(g.chains.length * 4),
      chainStart: [...g.chainStart],
      pairs: placed ? placed.pairs : g.pairs ? arena.alloc(g.pairs.length * 4) : 0,
      values: ps.map((p) => arena.alloc((g.m + 1) * p.nv * 16)),
      spare: ps.map((p) => (g.pairs ? arena.alloc((g.m + 1) * p.nv * 16) : 0)),
    };
    if (!placed) {
      arena.i32(kp.offsets, n * d1).set(g.offsets);
      arena.f32(kp.weights, n * d1).set(g.weights);
      arena.i32(kp.chains, g.chains.length).set(g.chains);
      if (g.pairs) arena.i32(kp.pairs, g.pairs.length).set(g.pairs);
    }
    plan.kernels.push(kp);
  });
  // A reused memory holds the last run's data: padding lanes must start at 0 (unless the
  // caller writes whole rows, as SimdPart.loadUnary does).
  if (zeroRows) {
    arena.f32(plan.prior, n * rowFloats).fill(0);
    arena.f32(plan.Q, n * rowFloats).fill(0);
  }
  if (prior && Q0) for (let t = 0; t < ps.length; t++) fillPart(arena.memory, plan, t, prior, Q0);
  return { arena, plan };
}

/** Writes part t's classes of the prior and Q0 (n x C) into the padded rows; padding lanes stay 0. */
export function fillPart(memory: WebAssembly.Memory, plan: SimdPlan, t: number, prior: Float32Array, Q0: Float32Array): void {
  const { n, C, rowFloats, parts } = plan;
  const pr = new Float32Array(memory.buffer, plan.prior, n * rowFloats);
  const q = new Float32Array(memory.buffer, plan.Q, n * rowFloats);
  let base = 0;
  for (let i = 0; i < t; i++) base += 4 * parts[i].nv;
  const { c0, ct } = parts[t];
  for (let px = 0; px < n; px++) {
    const s = px * C + c0;
    const o = px * rowFloats + base;
    for (let c = 0; c < ct; c++) {
      pr[o + c] = prior[s + c];
      q[o + c] = Q0[s + c];
    }
  }
}

/** One thread's view of a plan: its SIMD instance and the memory views it fills. */
export class SimdPart {
  private readonly ex: SimdExports;
  /** Per kernel, resolved once: the exported functions and the views to clear. */
  private readonly steps: {
    k: SimdKernelPlan;
    slice: ReturnType<SimdExports['slice']>;
    blurChains: ReturnType<SimdExports['blurChains']>;
    blurPairs: ReturnType<SimdExports['blurPairs']>;
    values: Float32Array;
    spareRow0: Float32Array | null;
  }[];
  private readonly qOffset: number;
  /** The fused one-part iteration's arguments (null where the plan has two parts). */
  private readonly fused: { splat: number[]; slice: number[] } | null;
  /** splatAll's arguments for this part (pairwise). */
  private readonly partSplat: number[];

  constructor(
    readonly plan: SimdPlan,
    memory: WebAssembly.Memory,
    readonly part: number,
  ) {
    this.ex = simdInstance(plan.shape, memory);
    const nv = plan.parts[part].nv;
    this.steps = plan.kernels.map((k, i) => ({
      k,
      slice: this.ex.slice(k.d1, nv, i > 0),
      blurChains: this.ex.blurChains(nv),
      blurPairs: this.ex.blurPairs(nv),
      values: new Float32Array(memory.buffer, k.values[part], (k.m + 1) * nv * 4),
      // The spare buffer's row 0 is the zero row of absent neighbours.
      spareRow0: k.pairs ? new Float32Array(memory.buffer, k.spare[part], nv * 4) : null,
    }));
    let off = 0;
    for (let t = 0; t < part; t++) off += plan.parts[t].nv * 16;
    this.qOffset = off;
    this.partSplat = [plan.n, plan.Q + off, plan.rowFloats * 4];
    for (const k of plan.kernels) this.partSplat.push(k.offsets, k.weights, k.values[part]);
    this.fused = null;
    if (plan.parts.length === 1 && this.ex.sliceUpdate) {
      const splat: number[] = [plan.n, plan.Q, plan.rowFloats * 4];
      const slice: number[] = [plan.n, plan.prior, plan.Q];
      for (const k of plan.kernels) {
        // blurred by pairs, the result ends in the spare buffer after an odd number of directions
        const last = k.pairs && k.d1 % 2 === 1 ? k.spare[0] : k.values[0];
        splat.push(k.offsets, k.weights, k.values[0]);
        slice.push(k.offsets, k.weights, last, k.weight);
      }
      this.fused = { splat, slice };
    }
  }

  /** Whether iterate() runs (one part, the fused kernels). */
  get canFuse(): boolean {
    return this.fused !== null;
  }

  /**
   * One part: the prior and Q0 rows straight from the score map (logits or probabilities floored),
   * computed in the SIMD kernels; every lane of every row is written.
   */
  loadUnary(memory: WebAssembly.Memory, data: Float32Array, kind: 'logits' | 'probs', floor: number): void {
    const { plan } = this;
    const { n, C } = plan;
    const nv = plan.parts[0].nv;
    // the score map goes through the messages' buffer (n x nv x 16 bytes >= n x C x 4)
    new Float32Array(memory.buffer, plan.msgs[0], n * C).set(data.subarray(0, n * C));
    // the last vector's lane mask, in the first row of Q (overwritten by the kernel after it is read)
    const mask = new Int32Array(memory.buffer, plan.Q, 4);
    for (let l = 0; l < 4; l++) mask[l] = 4 * (nv - 1) + l < C ? -1 : 0;
    const fn = kind === 'logits' ? this.ex.unaryLogits! : this.ex.unaryProbs!;
    fn(plan.msgs[0], n, C, plan.prior, plan.Q, plan.Q, floor);
  }

  /** One part: a whole mean-field iteration (splat every kernel, blur, slice into the update). Allocates nothing. */
  iterate(): void {
    const { plan, steps } = this;
    const f = this.fused!;
    for (const { values, spareRow0 } of steps) {
      values.fill(0);
      spareRow0?.fill(0);
    }
    this.ex.splatAll(plan.parts[0].nv)(...f.splat);
    const stride = plan.parts[0].nv * 16;
    for (const { k, blurChains, blurPairs } of steps) {
      if (k.pairs) {
        let src = k.values[0];
        let dst = k.spare[0];
        for (let j = 0; j < k.d1; j++) {
          blurPairs(k.pairs, j * k.m * 2, k.m, src, dst, stride);
          const t = src;
          src = dst;
          dst = t;
        }
      } else {
        for (let j = 0; j < k.d1; j++) blurChains(k.chains, k.chainStart[j], k.chainStart[j + 1], k.values[0], stride);
      }
    }
    this.ex.sliceUpdate!(...f.slice);
  }

  /** One part: Q out of the arena (n x C), unpadded by the SIMD kernel. */
  readQ(memory: WebAssembly.Memory): Float32Array {
    const { n, C } = this.plan;
    this.ex.unpad!(this.plan.Q, n, C, this.plan.msgs[0]);
    return new Float32Array(memory.buffer, this.plan.msgs[0], n * C).slice();
  }

  /**
   * msg_part = sum_k w_k K~_k Q for this part's classes: every kernel's splat in one pass over
   * this part's Q (splatAll), then per kernel the blur and the slice (added up after the first).
   * Allocates nothing.
   */
  pairwise(): void {
    const { plan, part, steps } = this;
    const n = plan.n;
    const nv = plan.parts[part].nv;
    const stride = nv * 16;
    const msg = plan.msgs[part];
    for (const { values, spareRow0 } of steps) {
      values.fill(0);
      spareRow0?.fill(0);
    }
    this.ex.splatAll(nv)(...this.partSplat);
    for (let i = 0; i < steps.length; i++) {
      const { k, slice, blurChains, blurPairs } = steps[i];
      let src = k.values[part];
      if (k.pairs) {
        let dst = k.spare[part];
        for (let j = 0; j < k.d1; j++) {
          blurPairs(k.pairs, j * k.m * 2, k.m, src, dst, stride);
          const t = src;
          src = dst;
          dst = t;
        }
      } else {
        for (let j = 0; j < k.d1; j++) blurChains(k.chains, k.chainStart[j], k.chainStart[j + 1], src, stride);
      }
      slice(n, k.offsets, k.weights, src, stride, msg, stride, k.weight);
    }
  }

  update(p0: number, p1: number): void {
    const { plan } = this;
    this.ex.update(plan.prior, plan.Q, plan.msgs[0], plan.msgs[1] ?? 0, p0, p1);
  }
}

/** Q out of the arena into an ordinary HWC Float32Array (n x C). */
export function readQ(arena: Arena, plan: SimdPlan): Float32Array {
  const { n, C, rowFloats } = plan;
  const q = arena.f32(plan.Q, n * rowFloats);
  const out = new Float32Array(n * C);
  let base = 0;
  for (const p of plan.parts) {
    for (let px = 0; px < n; px++) {
      const s = px * rowFloats + base;
      const o = px * C + p.c0;
      for (let c = 0; c < p.ct; c++) out[o + c] = q[s + c];
    }
    base += 4 * p.nv;
  }
  return out;
}
