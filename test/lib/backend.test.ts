import { strict as assert } from 'assert';
import { initBackend, polyfillNodeUtil, resolvePreference, tfjsPreferenceOf } from '../../lib/engine/backend';

describe('lib/engine: backend choice', () => {
  const saved = process.env.DEEPLAB_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.DEEPLAB_BACKEND;
    else process.env.DEEPLAB_BACKEND = saved;
  });

  it('takes the argument, else DEEPLAB_BACKEND (also for auto: it sets what auto means), else auto', () => {
    delete process.env.DEEPLAB_BACKEND;
    assert.equal(resolvePreference(), 'auto');
    assert.equal(resolvePreference('default'), 'auto');
    assert.equal(resolvePreference('auto'), 'auto');
    process.env.DEEPLAB_BACKEND = 'cpu';
    assert.equal(resolvePreference(), 'cpu');
    assert.equal(resolvePreference('auto'), 'cpu');
    assert.equal(resolvePreference('wasm'), 'wasm');
    assert.equal(resolvePreference('tfjs-node'), 'tensorflow');
    process.env.DEEPLAB_BACKEND = 'onnxruntime';
    assert.equal(resolvePreference('auto'), 'onnxruntime');
    assert.equal(resolvePreference('ort'), 'onnxruntime');
    assert.equal(resolvePreference('onnxruntime-cuda'), 'onnxruntime-cuda');
    assert.throws(() => resolvePreference('webgl'), /unknown backend "webgl": expected one of auto, tensorflow, wasm, cpu, onnxruntime, onnxruntime-cuda, onnxruntime-cpu/);
  });

  it('a worker serving ONNX Runtime runs tfjs auto for the pre- and post-processing', () => {
    assert.equal(tfjsPreferenceOf('onnxruntime'), 'auto');
    assert.equal(tfjsPreferenceOf('onnxruntime-cpu'), 'auto');
    assert.equal(tfjsPreferenceOf('wasm'), 'wasm');
  });

  it('auto picks the native backend when installed, else wasm (never cpu while wasm loads)', async () => {
    let native = false;
    try {
      require.resolve('@tensorflow/tfjs-node');
      native = true;
    } catch {
      try {
        require.resolve('@tensorflow/tfjs-node-gpu');
        native = true;
      } catch {
        native = false;
      }
    }
    assert.equal(await initBackend('auto'), native ? 'tensorflow' : 'wasm');
  });

  it('forcing tensorflow without tfjs-node installed fails with the install hint', async function () {
    try {
      require.resolve('@tensorflow/tfjs-node');
      this.skip(); // a user machine with tfjs-node: nothing to refuse
    } catch {
      await assert.rejects(initBackend('tensorflow'), /npm install @tensorflow\/tfjs-node/);
    }
  });

  it('polyfills the util.is* helpers that Node 23 removed, before tfjs-node needs them', () => {
    const u = require('util') as Record<string, (v: unknown) => boolean>;
    // Removed as on Node 23+ (isArray is still there on 24, deprecated: a warning when called).
    const removed = ['isNullOrUndefined', 'isArray', 'isString'];
    const originals = removed.map((name) => u[name]);
    try {
      for (const name of removed) delete u[name];
      polyfillNodeUtil();
      assert.equal(u.isNullOrUndefined(null), true);
      assert.equal(u.isNullOrUndefined(undefined), true);
      assert.equal(u.isNullOrUndefined(0), false);
      assert.equal(u.isArray([]), true);
      assert.equal(u.isArray({ length: 0 }), false);
      assert.equal(u.isString('x'), true);
    } finally {
      removed.forEach((name, i) => {
        if (originals[i]) u[name] = originals[i];
        else delete u[name];
      });
    }
  });
});
