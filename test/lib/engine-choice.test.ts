/**
 * The engine of a model: the order `auto` and each explicit choice try (with fakes for what this
 * machine has or lacks: a CUDA provider, tfjs-node-gpu), the notes a fallback leaves, and
 * ONNX Runtime's threads per worker.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { chooseEngine, describeCandidate, EngineCandidate, engineCandidates, TryResult } from '../../lib/engine/engine-choice';
import { ortThreads } from '../../lib/engine/onnxruntime';

/** A machine where only the engines named are available. */
function machine(available: string[]): (c: EngineCandidate) => Promise<TryResult<string>> {
  return async (c) => {
    const name = describeCandidate(c);
    return available.includes(name) ? { ok: true, value: name } : { ok: false, reason: 'not here', quiet: !name.includes('cuda') };
  };
}

const order = (pref: Parameters<typeof engineCandidates>[0], kind?: Parameters<typeof engineCandidates>[1]) => engineCandidates(pref, kind).map(describeCandidate);

describe('lib/engine: the engine of a model', () => {
  it('auto tries ORT with CUDA, tfjs-node-gpu, ORT on the CPU, tfjs-node, wasm, cpu in that order', () => {
    assert.deepEqual(order('auto'), ['onnxruntime (cuda)', 'tfjs-node-gpu', 'onnxruntime (cpu)', 'tensorflow', 'wasm', 'cpu']);
  });

  it('auto takes the first that loads on each kind of machine', async () => {
    const cases: [string[], string][] = [
      [['onnxruntime (cuda)', 'tfjs-node-gpu', 'onnxruntime (cpu)', 'wasm', 'cpu'], 'onnxruntime (cuda)'],
      [['tfjs-node-gpu', 'onnxruntime (cpu)', 'wasm', 'cpu'], 'tfjs-node-gpu'], // CUDA provider absent
      [['onnxruntime (cpu)', 'tensorflow', 'wasm', 'cpu'], 'onnxruntime (cpu)'], // this machine with tfjs-node
      [['tensorflow', 'wasm', 'cpu'], 'tensorflow'], // no onnxruntime-node
      [['wasm', 'cpu'], 'wasm'],
      [['cpu'], 'cpu'],
    ];
    for (const [available, want] of cases) {
      const got = await chooseEngine(engineCandidates('auto'), machine(available));
      assert.equal(got.value, want, available.join(', '));
    }
  });

  it('explicit choices keep to their engine; a TF.js graph keeps to tfjs and an ONNX file to ONNX Runtime', () => {
    assert.deepEqual(order('onnxruntime'), ['onnxruntime (cuda)', 'onnxruntime (cpu)']);
    assert.deepEqual(order('onnxruntime-cuda'), ['onnxruntime (cuda)', 'onnxruntime (cpu)']);
    assert.deepEqual(order('onnxruntime-cpu'), ['onnxruntime (cpu)']);
    assert.deepEqual(order('tensorflow'), ['tfjs-node-gpu', 'tensorflow']);
    assert.deepEqual(order('wasm'), ['wasm']);
    assert.deepEqual(order('cpu'), ['cpu']);
    assert.deepEqual(order('auto', 'tfjs-graph'), ['tfjs-node-gpu', 'tensorflow', 'wasm', 'cpu']);
    assert.deepEqual(order('onnxruntime', 'tfjs-graph'), ['tfjs-node-gpu', 'tensorflow', 'wasm', 'cpu']);
    assert.deepEqual(order('auto', 'onnx'), ['onnxruntime (cuda)', 'onnxruntime (cpu)']);
    assert.deepEqual(order('wasm', 'onnx'), ['onnxruntime (cuda)', 'onnxruntime (cpu)']);
    assert.deepEqual(order('onnxruntime-cpu', 'onnx'), ['onnxruntime (cpu)']);
  });

  it('a CUDA provider that does not load falls back to the CPU with a note; expected absences stay quiet', async () => {
    const got = await chooseEngine(engineCandidates('onnxruntime-cuda'), machine(['onnxruntime (cpu)']));
    assert.equal(got.value, 'onnxruntime (cpu)');
    assert.deepEqual(got.notes, ['onnxruntime (cuda): not here']);
    const quiet = await chooseEngine(engineCandidates('auto'), machine(['wasm']));
    assert.equal(quiet.passed.length, 4);
    assert.deepEqual(quiet.notes, ['onnxruntime (cuda): not here'], 'only the CUDA miss is worth a note in this fake');
  });

  it('says why when nothing is available', async () => {
    await assert.rejects(chooseEngine(engineCandidates('onnxruntime-cpu'), machine([])), /no engine available for this model: onnxruntime \(cpu\): not here/);
  });

  it('divides the cores among the workers (DEEPLAB_ORT_THREADS overrides)', () => {
    const saved = process.env.DEEPLAB_ORT_THREADS;
    try {
      delete process.env.DEEPLAB_ORT_THREADS;
      assert.equal(ortThreads(2, 2), 1);
      assert.equal(ortThreads(1, 2), 2);
      assert.equal(ortThreads(2, 16), 8);
      assert.equal(ortThreads(3, 2), 1, 'never below one');
      process.env.DEEPLAB_ORT_THREADS = '3';
      assert.equal(ortThreads(2, 2), 3);
      process.env.DEEPLAB_ORT_THREADS = 'many';
      assert.throws(() => ortThreads(2, 2), /DEEPLAB_ORT_THREADS must be a whole number >= 1, got "many"/);
    } finally {
      if (saved === undefined) delete process.env.DEEPLAB_ORT_THREADS;
      else process.env.DEEPLAB_ORT_THREADS = saved;
    }
  });
});

describe('lib/engine: without onnxruntime-node (an install that skipped the optional dependency)', function () {
  this.timeout(120_000);

  it('auto runs our networks on tfjs; asking for onnxruntime says how to install it', () => {
    // A child process in which requiring onnxruntime-node fails, as where it is not installed.
    const dir = path.resolve(__dirname, '../../../test-output/engine-choice');
    fs.mkdirSync(dir, { recursive: true });
    const preload = path.join(dir, 'no-ort.js');
    fs.writeFileSync(preload, `const M = require('module'); const r = M._resolveFilename;
M._resolveFilename = function (req, ...a) { if (req === 'onnxruntime-node' || req.startsWith('onnxruntime-node/')) { const e = new Error("Cannot find module '" + req + "'"); e.code = 'MODULE_NOT_FOUND'; throw e; } return r.call(this, req, ...a); };`);
    const script = `
      const { initBackend } = require(${JSON.stringify(path.resolve(__dirname, '../../lib/engine/backend'))});
      const host = require(${JSON.stringify(path.resolve(__dirname, '../../lib/compute/model-host'))});
      const spec = { variant: 'v3plus', width: 0.0625, classes: 3 };
      (async () => {
        await initBackend('wasm');
        const out = {};
        const auto = await host.loadModel('a', { spec, preprocessing: 'tanh', weights: { source: 'random' }, backend: 'auto', warmupSize: 0 });
        out.auto = [auto.backend, auto.engineNote || null];
        try { await host.loadModel('b', { spec, preprocessing: 'tanh', weights: { source: 'random' }, backend: 'onnxruntime', warmupSize: 0 }); out.ort = 'loaded'; }
        catch (e) { out.ort = e.message; }
        console.log(JSON.stringify(out));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-r', preload, '-e', script], { encoding: 'utf8', env: { ...process.env, DEEPLAB_BACKEND: '' } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { auto: [string, string | null]; ort: string };
    assert.deepEqual(out.auto, ['wasm', null], 'auto falls to wasm quietly');
    assert.match(out.ort, /no engine available for this model: onnxruntime \(cuda\): the onnxruntime engine needs the optional package onnxruntime-node, which does not load here .*npm install onnxruntime-node/);
  });
});
