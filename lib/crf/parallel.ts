/**
 * Mean field split over two threads: the calling thread and one helper thread it owns, sharing
 * memory (a shared WebAssembly memory for the SIMD kernels, SharedArrayBuffers for the
 * JavaScript ones) and meeting at barriers (Atomics). The lattices, Q and the prior are shared;
 * each thread filters half of the classes through both kernels into its own message buffer
 * (separate buffers, so the two never write the same cache lines), then each normalises half
 * of the pixels. Two barriers per iteration, no allocation inside the loop.
 *
 * Phase A overlaps too: the caller builds the appearance lattice while the helper builds the
 * smoothness lattice and the unary; the lattices then change hands through a MessagePort read
 * synchronously (receiveMessageOnPort), since both threads are busy in synchronous code.
 *
 * If the helper cannot start or stops answering, the caller gives up on it and the CRF runs on
 * one thread instead (dense-crf.ts), so a broken helper costs time, never a result.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MessageChannel, MessagePort, Worker, receiveMessageOnPort } from 'worker_threads';
import { RawImage, ScoreMap } from '../contract';
import {
  CrfKernel, appearanceFeatures, initialQ, kernelScratch, latticeKernel, pairwiseMessage, smoothnessFeatures, splitClasses,
  unaryPrior, updateQ,
} from './mean-field';
import { CrfParams } from './params';
import { Arena } from './arena';
import { SimdPart, SimdPlan, fillPart, planSimd, readQ } from './simd-mean-field';
import type { CrfResult } from './dense-crf';

// Control words (Int32Array on a SharedArrayBuffer).
const COUNT = 0;
const GEN = 1;
const ABORT = 2;
const BEAT = 3; // BEAT + thread index: bumped at every barrier arrival
const CTL_WORDS = 8;
const SPIN = 4000;

/** The job a helper gets: everything lives in shared memory. */
export interface HelperJob {
  id: number;
  ctl: Int32Array;
  width: number;
  height: number;
  classes: number;
  kind: ScoreMap['kind'];
  floor: number;
  params: CrfParams;
  prior: Float32Array;
  Q: Float32Array;
  /** Message buffers of the JavaScript kernels (empty with SIMD). */
  msgs: Float32Array[];
  cts: number[];
  /** Iterate on the SIMD kernels (in a WebAssembly memory the caller sets up after phase A). */
  simd: boolean;
  /** Stall limit (ms) without a sign of life from the other thread. */
  stallMs: number;
}

interface Exchange {
  id: number;
  kernel?: CrfKernel | null;
  simd?: { memory: WebAssembly.Memory; plan: SimdPlan };
  /** Message buffers and both lattices when the caller fell back to the JavaScript kernels. */
  msgs?: Float32Array[];
  kernels?: CrfKernel[];
  error?: string;
}

class Aborted extends Error {}

/** Two-party reusable barrier with stall detection (the other thread may have died). */
class Barrier {
  private readonly other: number;
  constructor(
    private readonly ctl: Int32Array,
    private readonly me: number,
    private readonly stallMs: number,
    private readonly firstSignMs = stallMs,
  ) {
    this.other = 1 - me;
  }

  arrive(): void {
    const ctl = this.ctl;
    Atomics.add(ctl, BEAT + this.me, 1);
    const gen = Atomics.load(ctl, GEN);
    if (Atomics.load(ctl, ABORT)) throw new Aborted('aborted');
    if (Atomics.add(ctl, COUNT, 1) === 1) {
      Atomics.store(ctl, COUNT, 0);
      Atomics.add(ctl, GEN, 1);
      Atomics.notify(ctl, GEN);
      return;
    }
    for (let i = 0; i < SPIN && Atomics.load(ctl, GEN) === gen; i++);
    let beat = Atomics.load(ctl, BEAT + this.other);
    let since = Date.now();
    while (Atomics.load(ctl, GEN) === gen) {
      Atomics.wait(ctl, GEN, gen, 200);
      const b = Atomics.load(ctl, BEAT + this.other);
      const now = Date.now();
      if (b !== beat) {
        beat = b;
        since = now;
      } else if (now - since > (b === 0 ? this.firstSignMs : this.stallMs) && Atomics.load(ctl, GEN) === gen) {
        abort(ctl);
        throw new HelperLost(`the CRF helper thread gave no sign of life for ${Math.round((now - since) / 1000)} s`);
      }
    }
    if (Atomics.load(ctl, ABORT)) throw new Aborted('aborted');
  }
}

class HelperLost extends Error {}

function abort(ctl: Int32Array): void {
  Atomics.store(ctl, ABORT, 1);
  Atomics.add(ctl, GEN, 1);
  Atomics.notify(ctl, GEN);
}

/** Reads this job's message from the exchange port (it was posted before the barrier both passed). */
function receive(port: MessagePort, id: number, ctl: Int32Array): Exchange {
  for (let tries = 0; tries < 10000; tries++) {
    const got = receiveMessageOnPort(port);
    if (got) {
      const ex = got.message as Exchange;
      if (ex.id !== id) continue; // left over from an aborted job
      if (ex.error !== undefined) throw new Error(ex.error);
      return ex;
    }
    Atomics.wait(ctl, CTL_WORDS - 1, 0, 1);
  }
  throw new HelperLost('the lattice from the other CRF thread never arrived');
}

function drain(port: MessagePort): void {
  while (receiveMessageOnPort(port));
}

function ownKernel(job: HelperJob, which: 'appearance' | 'smoothness', image: RawImage | null): CrfKernel {
  const { width: W, height: H, params } = job;
  const n = W * H;
  if (which === 'appearance') {
    if (!image) throw new Error('the appearance lattice is built where the image is');
    return latticeKernel(appearanceFeatures(image, params.thetaAlpha, params.thetaBeta), n, 5, params.w1);
  }
  return latticeKernel(smoothnessFeatures(W, H, params.thetaGamma), n, 2, params.w2);
}

function geometryBuffers(k: CrfKernel | null): ArrayBuffer[] {
  if (!k || k.kind !== 'lattice') return [];
  const g = k.g;
  return [g.offsets, g.weights, g.chains, g.chainStart, g.pairs].filter((a): a is Int32Array | Float32Array => !!a).map((a) => a.buffer as ArrayBuffer);
}

/** A SIMD run's memory and layout (the arena only on the thread that made it). */
interface SimdRun {
  memory: WebAssembly.Memory;
  plan: SimdPlan;
  arena?: Arena;
}

/**
 * The loop both threads run (me = 0: caller, 1: helper; only the caller has the image).
 * Returns the ms spent before the first barrier (lattices and unary) and the lattice sizes.
 *
 * Nothing allocated per run is left shared with the helper: its lattice moves to the caller
 * (transferred), the caller's reaches the helper as a copy where the helper needs it, and the
 * shared buffers (prior, Q, messages, the WebAssembly memory) are kept and reused. An idle
 * helper thread runs no garbage collection, so shared memory it was handed per run would
 * never be freed.
 */
function runSide(job: HelperJob, me: number, port: MessagePort, firstSignMs: number, image: RawImage | null): {
  latticeMs: number;
  points: [number, number];
  simd?: SimdRun;
} {
  const t0 = performance.now();
  const { ctl, width: W, height: H, classes: C, params, prior, Q, cts } = job;
  const n = W * H;
  const barrier = new Barrier(ctl, me, job.stallMs, firstSignMs);
  // Phase A. Caller: the appearance lattice (the larger). Helper: the smoothness lattice and the unary.
  const want: ('appearance' | 'smoothness')[] = [];
  if (params.w1 > 0) want.push('appearance');
  if (params.w2 > 0) want.push('smoothness');
  const mine = want.length === 2 ? want[me] : me === 0 ? want[0] : undefined;
  const theirs = want.length === 2 ? want[1 - me] : me === 1 ? want[0] : undefined;
  let kernel = mine ? ownKernel(job, mine, image) : null;
  if (me === 1) {
    // prior holds a copy of the input map; the unary is computed in place.
    unaryPrior({ width: W, height: H, classes: C, data: prior, kind: job.kind, stride: 1 }, job.floor, prior);
    initialQ(prior, C, Q, 0, n);
    // With SIMD the caller copies the lattice into the WebAssembly memory: move it there.
    port.postMessage({ id: job.id, kernel } satisfies Exchange, job.simd ? geometryBuffers(kernel) : []);
    if (job.simd) kernel = null;
  } else if (!job.simd) {
    port.postMessage({ id: job.id, kernel } satisfies Exchange);
  }
  barrier.arrive();
  const tA = performance.now();
  const byName: Record<string, CrfKernel | null> = {};
  if (mine) byName[mine] = kernel;
  if (theirs && (me === 0 || !job.simd)) byName[theirs] = receive(port, job.id, ctl).kernel!;
  let kernels = want.map((w) => byName[w]!);
  const size = (name: string) => {
    const k = byName[name];
    return k && k.kind === 'lattice' ? k.g.m : 0;
  };
  const points: [number, number] = [size('appearance'), size('smoothness')];

  const half = Math.floor(n / 2);
  const p0 = me === 0 ? 0 : half;
  const p1 = me === 0 ? half : n;
  // The caller lays out the WebAssembly memory (lattices copied in) and hands it over; where
  // that is impossible (over 4 GiB) both threads fall back to the JavaScript kernels.
  let simd: SimdRun | undefined;
  let msgs = job.msgs;
  if (job.simd) {
    if (me === 0) {
      try {
        const { arena, plan } = planSimd(n, C, splitClasses(C, 2), kernels);
        simd = { arena, plan, memory: arena.memory };
        port.postMessage({ id: job.id, simd: { memory: arena.memory, plan } } satisfies Exchange);
      } catch {
        msgs = cts.map((ct, t) => sharedF32(`msg${t}`, n * ct));
        port.postMessage({ id: job.id, msgs, kernels } satisfies Exchange);
      }
    }
    barrier.arrive();
    if (me === 1) {
      const ex = receive(port, job.id, ctl);
      if (ex.msgs) {
        msgs = ex.msgs;
        kernels = ex.kernels!;
      } else simd = ex.simd;
    }
  }
  if (simd) {
    fillPart(simd.memory, simd.plan, me, prior, Q);
    const part = new SimdPart(simd.plan, simd.memory, me);
    barrier.arrive(); // both parts' rows written before anyone splats
    for (let it = 0; it < params.iterations; it++) {
      part.pairwise();
      barrier.arrive();
      part.update(p0, p1);
      barrier.arrive();
    }
  } else {
    const c0 = me === 0 ? 0 : cts[0];
    const ct = cts[me];
    const scratch = kernels.map((k) => kernelScratch(k, ct));
    for (let it = 0; it < params.iterations; it++) {
      pairwiseMessage(kernels, scratch, Q, C, c0, ct, msgs[me]);
      barrier.arrive();
      updateQ(prior, C, msgs, cts, Q, p0, p1);
      barrier.arrive();
    }
  }
  return { latticeMs: tA - t0, points, simd: me === 0 ? simd : undefined };
}

/** Helper side: runs one job; errors go back through the exchange port and abort the caller. */
export function helperRun(job: HelperJob, port: MessagePort): void {
  try {
    Atomics.add(job.ctl, BEAT + 1, 1);
    Atomics.notify(job.ctl, GEN);
    runSide(job, 1, port, job.stallMs, null);
  } catch (err) {
    if (err instanceof Aborted || err instanceof HelperLost) return;
    port.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) } satisfies Exchange);
    abort(job.ctl);
  }
}

interface Helper {
  worker: Worker;
  port: MessagePort;
  broken: boolean;
}

let helper: Helper | undefined;
let nextJob = 1;

/** Shared buffers kept from run to run (see runSide), grown as images need. */
const sharedPool = new Map<string, SharedArrayBuffer>();

function sharedF32(key: string, length: number): Float32Array {
  let b = sharedPool.get(key);
  if (!b || b.byteLength < length * 4) {
    b = new SharedArrayBuffer(length * 4);
    sharedPool.set(key, b);
  }
  return new Float32Array(b, 0, length);
}

/** Lets the kept buffers go (the helper too, with closeCrfHelper). */
export function releaseSharedBuffers(): void {
  sharedPool.clear();
}

function getHelper(): Helper | null {
  if (helper && !helper.broken) return helper;
  if (helper) void helper.worker.terminate();
  helper = undefined;
  const file = path.join(__dirname, 'crf-helper.js');
  if (!fs.existsSync(file)) return null;
  try {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(file, { workerData: { port: port2 }, transferList: [port2] });
    const h: Helper = { worker, port: port1, broken: false };
    worker.unref();
    worker.on('error', () => (h.broken = true));
    worker.on('exit', () => (h.broken = true));
    helper = h;
    return h;
  } catch {
    return null;
  }
}

/** Stops this thread's helper (tests, shutdown); the next parallel run starts a new one. */
export async function closeCrfHelper(): Promise<void> {
  const h = helper;
  helper = undefined;
  if (h) {
    h.port.close();
    await h.worker.terminate();
  }
}

/**
 * Mean field on this thread and the helper. Returns null when the helper is unavailable or was
 * lost (the caller then runs on one thread); rethrows real errors.
 */
export function runParallel(map: ScoreMap, image: RawImage, params: CrfParams, floor: number, simd: boolean): CrfResult | null {
  const h = getHelper();
  if (!h) return null;
  const t0 = performance.now();
  const { width: W, height: H, classes: C } = map;
  const n = W * H;
  const parts = splitClasses(C, 2);
  const cts = parts.map((p) => p.ct);
  const prior = sharedF32('prior', n * C);
  prior.set(map.data);
  const job: HelperJob = {
    id: nextJob++,
    ctl: new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4)),
    width: W,
    height: H,
    classes: C,
    kind: map.kind,
    floor,
    params,
    prior,
    Q: sharedF32('Q', n * C),
    msgs: simd ? [] : cts.map((ct, t) => sharedF32(`msg${t}`, n * ct)),
    cts,
    simd,
    // Generous: a live helper arrives within one phase; sizes scale the slowest phase.
    stallMs: 60_000 + n * C * 0.02,
  };
  drain(h.port);
  h.worker.postMessage(job);
  let side: ReturnType<typeof runSide>;
  try {
    // The helper acknowledges a job at once; 20 s without that means it never started.
    side = runSide(job, 0, h.port, 20_000, image);
  } catch (err) {
    if (err instanceof Aborted || err instanceof HelperLost) {
      // The helper failed or vanished: retire it; the caller reruns on one thread.
      h.broken = true;
      return null;
    }
    abort(job.ctl);
    throw err;
  }
  // Out of shared memory: an ordinary, transferable buffer.
  const probs = side.simd?.arena ? readQ(side.simd.arena, side.simd.plan) : new Float32Array(job.Q);
  const t1 = performance.now();
  const latticeMs = side.latticeMs;
  return {
    probs: { width: W, height: H, classes: C, data: probs, kind: 'probs', stride: 1 },
    timing: {
      latticeMs,
      inferenceMs: t1 - t0 - latticeMs,
      totalMs: t1 - t0,
      threads: 2,
      latticePoints: side.points,
    },
  };
}
