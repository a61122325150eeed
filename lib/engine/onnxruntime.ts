/**
 * ONNX Runtime (onnxruntime-node), the inference engine next to tfjs: optional loading, the
 * execution provider (CUDA when its provider library loads, else CPU), the intra-op threads of
 * each compute worker, and sessions made from bytes.
 *
 * onnxruntime-node is an optional dependency: its CPU binaries ship inside the npm package, its
 * CUDA provider is a separate download by its install script (where that download fails, npm 10
 * and 11 drop the package unless the install is told to skip it: README, "Engines"). Without the
 * package everything still runs on tfjs.
 *
 * Trap (measured here): terminating a worker thread, or exiting the process, while a session's
 * run is inside native code aborts the whole process ("terminate called after throwing an
 * instance of 'Napi::Error'"). The compute pool therefore asks its workers to exit between tasks
 * (lib/compute/pool), and a model is released only after its queued forward passes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type * as Ort from 'onnxruntime-node';

export type OrtModule = typeof Ort;
export type OrtSession = Ort.InferenceSession;
export type OrtProvider = 'cuda' | 'cpu';

const PACKAGE = 'onnxruntime-node';

let loaded: { ort?: OrtModule; error?: string } | undefined;

/** The onnxruntime-node module, or undefined when it is not installed (or its binary does not load here). */
export function tryLoadOrt(): OrtModule | undefined {
  if (!loaded) {
    try {
      const ort = require(PACKAGE) as OrtModule;
      // Torch exports carry unused initialisers and the like: ORT's warnings would fill Node-RED's log.
      if (!ort.env.logLevel || ort.env.logLevel === 'warning') ort.env.logLevel = 'error';
      loaded = { ort };
    } catch (err) {
      loaded = { error: (err as Error).message.split('\n')[0] };
    }
  }
  return loaded.ort;
}

/** The module, or an error that says how to get it. */
export function loadOrt(): OrtModule {
  const ort = tryLoadOrt();
  if (ort) return ort;
  throw new Error(`the onnxruntime engine needs the optional package ${PACKAGE}, which does not load here (${loaded?.error}): ` +
    `install it next to Node-RED (npm install ${PACKAGE}) or choose the backend wasm`);
}

export function ortAvailable(): boolean {
  return tryLoadOrt() !== undefined;
}

/** Where onnxruntime-node keeps its native libraries for this platform. */
export function ortBinaryDir(): string | undefined {
  try {
    const pkg = require.resolve(`${PACKAGE}/package.json`);
    return path.join(path.dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** The CUDA provider libraries that onnxruntime-node's install script downloads (not in the npm package). */
const CUDA_PROVIDER_FILES = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];

/**
 * Whether the CUDA provider is installed at all. Trying it without its files only gets ORT's own
 * error log on stderr, so `auto` asks for CUDA only when they are there; whether it then loads
 * (a CUDA 12 runtime, cuDNN 9, a GPU) is known only by creating a session.
 */
export function cudaProviderInstalled(): boolean {
  if (process.platform !== 'linux' && process.platform !== 'win32') return false;
  const dir = ortBinaryDir();
  if (!dir) return false;
  const files = process.platform === 'win32' ? ['onnxruntime_providers_cuda.dll', 'onnxruntime_providers_shared.dll'] : CUDA_PROVIDER_FILES;
  return files.every((f) => fs.existsSync(path.join(dir, f)));
}

/**
 * Intra-op threads of one session: the cores shared among the pool's workers, so that workers x
 * threads never exceed the cores (a CRF or another forward pass runs in the other worker).
 * DEEPLAB_ORT_THREADS sets it.
 */
export function ortThreads(workers: number, cores = os.availableParallelism?.() ?? os.cpus().length): number {
  const env = process.env.DEEPLAB_ORT_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new Error(`DEEPLAB_ORT_THREADS must be a whole number >= 1, got "${env}"`);
    return n;
  }
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

export interface SessionOptions {
  provider: OrtProvider;
  threads: number;
}

/**
 * A session over an ONNX model held in memory. Sequential execution with `threads` intra-op
 * threads that sleep between runs (spinning threads would take the core from the other worker).
 * With provider 'cuda' a provider that does not load throws: the caller decides the fallback.
 */
export async function createSession(bytes: Uint8Array, opts: SessionOptions): Promise<OrtSession> {
  const ort = loadOrt();
  const options: Ort.InferenceSession.SessionOptions = {
    executionProviders: [opts.provider],
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
  return ort.InferenceSession.create(bytes, options);
}

/** The engine as the node status names it: "onnxruntime (cpu)". */
export function describeOrt(provider: OrtProvider): string {
  return `onnxruntime (${provider})`;
}
