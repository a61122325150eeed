/**
 * The engine of one model: which of ONNX Runtime (CUDA / CPU) and the tfjs backends runs its
 * forward passes. The order is a plain list per preference; the model host tries each candidate
 * (creating the session is the only real test of a CUDA provider) and keeps the first that works.
 */
import { EnginePreference } from './backend';

export type EngineCandidate =
  | { engine: 'onnxruntime'; provider: 'cuda' | 'cpu' }
  /** tensorflow-gpu: tfjs's `tensorflow` backend from @tensorflow/tfjs-node-gpu. */
  | { engine: 'tfjs'; backend: 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu' };

export const ORT_CUDA: EngineCandidate = { engine: 'onnxruntime', provider: 'cuda' };
export const ORT_CPU: EngineCandidate = { engine: 'onnxruntime', provider: 'cpu' };
const TF_GPU: EngineCandidate = { engine: 'tfjs', backend: 'tensorflow-gpu' };
const TF_NODE: EngineCandidate = { engine: 'tfjs', backend: 'tensorflow' };
const TF_WASM: EngineCandidate = { engine: 'tfjs', backend: 'wasm' };
const TF_CPU: EngineCandidate = { engine: 'tfjs', backend: 'cpu' };

/** What a model can run on: our networks anywhere, a TF.js graph only on tfjs, an ONNX file only on ONNX Runtime. */
export type ModelKind = 'ours' | 'tfjs-graph' | 'onnx';

/**
 * Candidates in order. `auto`: ORT with CUDA, tfjs-node-gpu, ORT CPU, tfjs-node, wasm, cpu.
 * A TF.js graph keeps to tfjs and an ONNX file to ONNX Runtime whatever the preference says
 * (the tfjs backend named then still does their pre- and post-processing).
 */
export function engineCandidates(pref: EnginePreference, kind: ModelKind = 'ours'): EngineCandidate[] {
  let list: EngineCandidate[];
  switch (pref) {
    case 'auto': list = [ORT_CUDA, TF_GPU, ORT_CPU, TF_NODE, TF_WASM, TF_CPU]; break;
    case 'onnxruntime':
    case 'onnxruntime-cuda': list = [ORT_CUDA, ORT_CPU]; break;
    case 'onnxruntime-cpu': list = [ORT_CPU]; break;
    case 'tensorflow': list = [TF_GPU, TF_NODE]; break;
    case 'wasm': list = [TF_WASM]; break;
    case 'cpu': list = [TF_CPU]; break;
  }
  if (kind === 'tfjs-graph') return pref.startsWith('onnxruntime') ? [TF_GPU, TF_NODE, TF_WASM, TF_CPU] : list.filter((c) => c.engine === 'tfjs');
  if (kind === 'onnx') return pref === 'onnxruntime-cpu' ? [ORT_CPU] : [ORT_CUDA, ORT_CPU];
  return list;
}

export function describeCandidate(c: EngineCandidate): string {
  return c.engine === 'onnxruntime' ? `onnxruntime (${c.provider})` : c.backend === 'tensorflow-gpu' ? 'tfjs-node-gpu' : c.backend;
}

/**
 * A try's answer: what it built, or why the candidate is not available here. `quiet`: an expected
 * absence (a package not installed, another tfjs backend), not worth telling the user about.
 */
export type TryResult<T> = { ok: true; value: T } | { ok: false; reason: string; quiet?: boolean };

export interface EngineChoice<T> {
  candidate: EngineCandidate;
  value: T;
  /** Why each earlier candidate was passed over, in order ("onnxruntime (cuda): its CUDA provider is not installed"). */
  passed: string[];
  /** The passed-over reasons that are not quiet: what the load should tell (a CUDA provider that did not load, a failed export). */
  notes: string[];
}

/**
 * The first candidate whose try succeeds. A try that throws is an error of the model itself
 * (a bad file), not of the engine: it propagates. When none is available the error lists why.
 */
export async function chooseEngine<T>(candidates: EngineCandidate[], tryOne: (c: EngineCandidate) => Promise<TryResult<T>>): Promise<EngineChoice<T>> {
  const passed: string[] = [];
  const notes: string[] = [];
  for (const candidate of candidates) {
    const r = await tryOne(candidate);
    if (r.ok) return { candidate, value: r.value, passed, notes };
    const why = `${describeCandidate(candidate)}: ${r.reason}`;
    passed.push(why);
    if (!r.quiet) notes.push(why);
  }
  throw new Error(`no engine available for this model: ${passed.join('; ')}`);
}
