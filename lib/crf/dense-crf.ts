/**
 * The dense CRF entry point: checks the inputs, then runs mean field on this thread or split
 * over this thread and a helper thread (classes halved, shared memory, see parallel.ts).
 * Synchronous and CPU-bound: call it from a compute worker (lib/compute/client crf), never
 * from Node-RED's event loop.
 */
import * as os from 'os';
import { ContractError, RawImage, ScoreMap, expectFinite, expectRawImage, expectScoreMap } from '../contract';
import {
  CrfKernel, DEFAULT_PROB_FLOOR, appearanceFeatures, exactKernel, initialQ, kernelScratch, latticeKernel, pairwiseMessage,
  smoothnessFeatures, unaryPrior, updateQ,
} from './mean-field';
import { closeCrfHelper, releaseSharedBuffers, runParallel } from './parallel';
import { Arena, releaseArena } from './arena';
import { releaseLatticeBuilder } from './lattice-wasm';
import { simdSupported } from './simd';
import { SimdPart, planSimd } from './simd-mean-field';
import { CrfParams, validateCrfParams } from './params';

export interface CrfOptions {
  /**
   * Threads for mean field: 1, or 2 (this thread plus a helper thread, each filtering half of
   * the classes). Default: DEEPLAB_CRF_THREADS, else 2 where the machine has 2 or more cores.
   */
  threads?: number;
  /** 'lattice' (default): permutohedral lattice. 'exact': O(n^2) brute force, for tests on tiny images. */
  filter?: 'lattice' | 'exact';
  /** Floor on input probabilities before -log (default 1e-5); unused for logits. */
  probFloor?: number;
  /**
   * Run the iterations on the WebAssembly SIMD kernels (default: where supported, unless
   * DEEPLAB_CRF_SIMD=0); false runs the JavaScript kernels.
   */
  simd?: boolean;
  /** How error messages name the map and the image (default msg.payload, msg.image). */
  mapName?: string;
  imageName?: string;
}

export interface CrfTiming {
  /** Features, lattice construction and normalisation, ms. */
  latticeMs: number;
  /** Unary and mean-field iterations, ms. */
  inferenceMs: number;
  totalMs: number;
  threads: number;
  /** Lattice vertices of the appearance and smoothness kernels (0 where a kernel is off). */
  latticePoints: [number, number];
}

export interface CrfResult {
  probs: ScoreMap;
  timing: CrfTiming;
}

/**
 * Validates a map + image pair for the CRF; ContractErrors say what is wrong and how to fix it.
 * finite: also scan every score for NaN/Inf (a full pass over the map).
 * coarser: also accept a map smaller than the image whose stride says so (stride > 1: logits, or a
 * map capped by a memory budget), which the working-resolution entry resizes itself.
 */
export function checkCrfInputs(map: unknown, image: unknown, mapWhat = 'msg.payload', imageWhat = 'msg.image', finite = true, coarser = false): { map: ScoreMap; image: RawImage } {
  if (image === undefined || image === null) {
    throw new ContractError(`${imageWhat} is missing: the CRF needs the original RGB image (a RawImage) next to the score map`);
  }
  const m = expectScoreMap(map, mapWhat);
  const img = expectRawImage(image, imageWhat);
  const coarse = coarser && (m.stride ?? 1) > 1 && m.width <= img.width && m.height <= img.height;
  if ((m.width !== img.width || m.height !== img.height) && !coarse) {
    throw new ContractError(`${mapWhat} is ${m.width}x${m.height} but ${imageWhat} is ${img.width}x${img.height}: ` +
      'upsample the score map to the image size first (upsample node)');
  }
  if (m.classes > 255) throw new ContractError(`${mapWhat} has ${m.classes} classes; labels are 8-bit, at most 255 classes`);
  if (m.kind !== 'logits' && m.kind !== 'probs') {
    throw new ContractError(`${mapWhat}.kind must be 'logits' or 'probs', got ${JSON.stringify(m.kind)}`);
  }
  if (finite) expectFinite(m, mapWhat);
  return { map: m, image: img };
}

/** Whether a run uses the SIMD kernels. */
export function useSimd(opts: CrfOptions): boolean {
  if (opts.filter === 'exact') return false;
  const want = opts.simd ?? process.env.DEEPLAB_CRF_SIMD !== '0';
  return want && simdSupported();
}

export function defaultThreads(): number {
  const env = Number(process.env.DEEPLAB_CRF_THREADS);
  if (Number.isInteger(env) && env > 0) return Math.min(env, 2);
  return Math.min(2, os.availableParallelism?.() ?? os.cpus().length);
}

function buildKernels(image: RawImage, params: CrfParams, exact: boolean, arena?: Arena): CrfKernel[] {
  const { width: W, height: H } = image;
  const n = W * H;
  const kernels: CrfKernel[] = [];
  if (params.w1 > 0) {
    kernels.push(exact ? exactKernel(appearanceFeatures(image, params.thetaAlpha, params.thetaBeta), n, 5, params.w1)
      : latticeKernel({ kind: 'appearance', image, thetaAlpha: params.thetaAlpha, thetaBeta: params.thetaBeta }, n, 5, params.w1, undefined, arena));
  }
  if (params.w2 > 0) {
    kernels.push(exact ? exactKernel(smoothnessFeatures(W, H, params.thetaGamma), n, 2, params.w2)
      : latticeKernel({ kind: 'smoothness', width: W, height: H, thetaGamma: params.thetaGamma }, n, 2, params.w2, undefined, arena));
  }
  return kernels;
}

function points(kernels: CrfKernel[], params: CrfParams): [number, number] {
  const m = kernels.map((k) => (k.kind === 'lattice' ? k.g.m : k.n));
  return [params.w1 > 0 ? m.shift()! : 0, params.w2 > 0 ? m.shift()! : 0];
}

/** Mean field on this thread only. */
export function denseCrfSingle(map: ScoreMap, image: RawImage, params: CrfParams, opts: CrfOptions = {}): CrfResult {
  const t0 = performance.now();
  const { width: W, height: H, classes: C } = map;
  const n = W * H;
  // With the SIMD kernels, the lattices are built straight into their WebAssembly memory.
  const wantSimd = params.iterations > 0 && (params.w1 > 0 || params.w2 > 0) && useSimd(opts);
  let arena: Arena | undefined;
  if (wantSimd) {
    try {
      arena = Arena.acquire(n * 64);
    } catch {
      arena = undefined;
    }
  }
  const kernels = buildKernels(image, params, opts.filter === 'exact', arena);
  const t1 = performance.now();
  const floor = opts.probFloor ?? DEFAULT_PROB_FLOOR;
  let simd: ReturnType<typeof planSimd> | undefined;
  if (wantSimd && kernels.length > 0) {
    try {
      simd = planSimd(n, C, [{ c0: 0, ct: C }], kernels, undefined, undefined, false, arena);
    } catch {
      simd = undefined; // over WebAssembly's 4 GiB: the JavaScript kernels use ordinary memory
    }
  }
  let out: Float32Array;
  if (simd) {
    // everything in the SIMD kernels: unary, iterations (fused), Q out
    const part = new SimdPart(simd.plan, simd.arena.memory, 0);
    part.loadUnary(simd.arena.memory, map.data, map.kind, floor);
    for (let it = 0; it < params.iterations; it++) part.iterate();
    out = part.readQ(simd.arena.memory);
  } else {
    const prior = new Float32Array(n * C);
    unaryPrior(map, floor, prior);
    const Q = new Float32Array(n * C);
    initialQ(prior, C, Q, 0, n);
    out = Q;
    if (params.iterations > 0 && kernels.length > 0) {
      const msg = new Float32Array(n * C);
      const scratch = kernels.map((k) => kernelScratch(k, C));
      for (let it = 0; it < params.iterations; it++) {
        pairwiseMessage(kernels, scratch, Q, C, 0, C, msg);
        updateQ(prior, C, [msg], [C], Q, 0, n);
      }
    }
  }
  const t2 = performance.now();
  return {
    probs: { width: W, height: H, classes: C, data: out, kind: 'probs', stride: 1 },
    timing: { latticeMs: t1 - t0, inferenceMs: t2 - t1, totalMs: t2 - t0, threads: 1, latticePoints: points(kernels, params) },
  };
}

/**
 * Refines a score map (logits or probabilities, at the image's size) with the fully connected
 * CRF; returns probabilities (kind 'probs', stride 1) and timings.
 */
export function denseCrf(map: ScoreMap, image: RawImage, params: CrfParams, opts: CrfOptions = {}): CrfResult {
  ({ map, image } = checkCrfInputs(map, image, opts.mapName, opts.imageName));
  validateCrfParams(params);
  const threads = opts.threads ?? defaultThreads();
  const worthSplitting = threads > 1 && map.classes > 1 && opts.filter !== 'exact' && params.iterations > 0 &&
    (params.w1 > 0 || params.w2 > 0) && map.width * map.height >= 4096;
  try {
    if (worthSplitting) {
      const r = runParallel(map, image, params, opts.probFloor ?? DEFAULT_PROB_FLOOR, useSimd(opts));
      if (r) return r;
    }
    return denseCrfSingle(map, image, params, opts);
  } finally {
    releaseWhenIdle();
  }
}

/** Idle time after which the kept buffers, the WebAssembly memory and the helper thread go. */
export const CRF_IDLE_RELEASE_MS = 30_000;
let idleTimer: NodeJS.Timeout | undefined;

function releaseWhenIdle(): void {
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = setTimeout(releaseCrfMemory, CRF_IDLE_RELEASE_MS);
  idleTimer.unref();
}

/**
 * Lets go of what the CRF keeps between runs (the WebAssembly memory, the shared buffers, the
 * helper thread); the next run allocates afresh. Its own idle timer calls it, and so does a
 * compute worker that has gone quiet before collecting its garbage (lib/compute/worker-main).
 */
export function releaseCrfMemory(): void {
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = undefined;
  releaseArena();
  releaseLatticeBuilder();
  releaseSharedBuffers();
  void closeCrfHelper();
}
