/**
 * The ONNX export (models/onnx, weights/export-onnx, the CLI's `export`): ONNX Runtime running
 * the exported graph gives what our tfjs forward gives, for every variant, backbone and layout,
 * at two input sizes and batch sizes from one file (dynamic N, H, W), with random weights and
 * random BN statistics (so the folding into the convs is really exercised); the graph has the
 * promised interface; the command line exports a saved model and a PyTorch checkpoint, and the
 * latter matches PyTorch's own logits.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { main as cli } from '../../lib/cli';
import { DeepLab, ModelSpec } from '../../lib/models/deeplab';
import { exportOnnx, ONNX_INPUT, ONNX_META, ONNX_OUTPUT } from '../../lib/models/onnx/export';
import { saveModel } from '../../lib/weights/format';
import { vocSample } from '../helpers/shared-data';
import { tfReady } from '../helpers/tf-setup';
import { runTorchPython } from '../helpers/torch-python';

const TORCH_OUT = path.resolve(__dirname, '../../../test-output/torch-layouts');
const TORCH_SCRIPT = path.resolve(__dirname, '../../../test/fixtures/torch/make_layout_fixtures.py');
const JF_CASE = 'jfzhang95-v3plus-mobilenet';

/** Random conv biases and BN parameters and statistics far from the identity, so that folding matters. */
function randomise(model: DeepLab, seed: number): void {
  tf.tidy(() => {
    for (const [name, v] of model.store.all()) {
      const s = seed++;
      if (name.endsWith('.gamma')) v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', s));
      else if (name.endsWith('.beta')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', s));
      else if (name.endsWith('.running_mean')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', s));
      else if (name.endsWith('.running_var')) v.assign(tf.randomUniform(v.shape, 0.3, 3, 'float32', s));
      else if (name.endsWith('.bias')) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', s));
    }
  });
}

interface Parity {
  maxAbs: number;
  range: number;
  argmax: number;
}

function compare(ref: Float32Array, got: Float32Array, classes: number): Parity {
  assert.equal(got.length, ref.length, 'logits sizes');
  let maxAbs = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ref.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(ref[i] - got[i]));
    lo = Math.min(lo, ref[i]);
    hi = Math.max(hi, ref[i]);
  }
  const argmaxAt = (a: Float32Array, p: number) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (a[p * classes + c] > a[p * classes + best]) best = c;
    return best;
  };
  const pixels = ref.length / classes;
  let agree = 0;
  for (let p = 0; p < pixels; p++) if (argmaxAt(ref, p) === argmaxAt(got, p)) agree++;
  return { maxAbs, range: hi - lo, argmax: agree / pixels };
}

function assertParity(p: Parity, what: string): void {
  assert.ok(p.range > 0, `${what}: constant logits prove nothing`);
  assert.ok(p.maxAbs <= 1e-3 * p.range, `${what}: max abs ${p.maxAbs} exceeds 1e-3 of the logits' range ${p.range}`);
  assert.ok(p.argmax >= 0.999, `${what}: argmax agrees on ${(100 * p.argmax).toFixed(3)} % of the pixels`);
}

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
}

async function runOrt(s: ort.InferenceSession, x: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const out = await s.run({ [ONNX_INPUT]: new ort.Tensor('float32', x, dims) });
  return out[ONNX_OUTPUT];
}

/** tfjs forward and ORT on the same random batch; the logits' shapes must agree too. */
async function parityAt(model: DeepLab, s: ort.InferenceSession, dims: [number, number, number, number], seed: number): Promise<Parity> {
  const x = tf.randomNormal(dims, 0, 1, 'float32', seed) as tf.Tensor4D;
  const ref = tf.tidy(() => model.forward(x).logits);
  try {
    const got = await runOrt(s, x.dataSync() as Float32Array, dims);
    assert.deepEqual(got.dims, ref.shape, 'logits shape');
    return compare(ref.dataSync() as Float32Array, got.data as Float32Array, model.spec.classes);
  } finally {
    tf.dispose([x, ref]);
  }
}

/** The decoded model, 64-bit integers as numbers. */
function decode(bytes: Uint8Array): onnx.IModelProto {
  return onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: Number, defaults: true }) as onnx.IModelProto;
}

function metadata(model: onnx.IModelProto): Record<string, string> {
  return Object.fromEntries((model.metadataProps ?? []).map((e) => [e.key ?? '', e.value ?? '']));
}

const table: string[] = [];
function record(label: string, size: string, p: Parity): void {
  table.push(`${label.padEnd(44)}${size.padEnd(12)}${p.maxAbs.toExponential(2)}  ${(p.maxAbs / p.range).toExponential(2)}  ${(100 * p.argmax).toFixed(2)} %`);
}

describe('lib/models/onnx: ONNX export', () => {
  before(async () => {
    await tfReady();
  });
  after(() => {
    if (table.length) console.log(`      network                                     input       max abs    / range     argmax\n${table.map((r) => `      ${r}`).join('\n')}`);
  });

  // Small widths and fewer blocks keep this quick; the shapes still take every code path (multi-grid
  // needs three layer4 blocks, ceil-mode pooling an even map: 67x98 gives one, odd on the other axis).
  const small: [string, Partial<ModelSpec>][] = [
    ['v1 VGG-16 LargeFOV', { variant: 'v1', width: 0.125 }],
    ['v2 ResNet-101 ASPP-L (caffe)', { variant: 'v2', width: 0.125, blocks: [1, 2, 2, 1] }],
    ['v3 paper ResNet-101 OS8', { variant: 'v3', width: 0.125, blocks: [1, 1, 2, 3], outputStride: 8 }],
    ['v3 paper ResNet-101 OS16', { variant: 'v3', width: 0.125, blocks: [1, 1, 2, 3], outputStride: 16 }],
    ['v3 torchvision ResNet-50 OS8 (aux)', { variant: 'v3', backbone: 'resnet50', layout: 'torchvision', width: 0.125, blocks: [1, 1, 2, 2], outputStride: 8, aux: true }],
    ['v3 MobileNetV2 OS16', { variant: 'v3', backbone: 'mobilenetv2', width: 0.3 }],
    ['v3+ MobileNetV2 paper OS16', { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.25 }],
    ['v3+ MobileNetV2 jfzhang95 OS16', { variant: 'v3plus', backbone: 'mobilenetv2', layout: 'jfzhang95', width: 0.25 }],
    ['v3+ MobileNetV2 paper OS8', { variant: 'v3plus', backbone: 'mobilenetv2', width: 0.25, outputStride: 8 }],
    ['v3+ ResNet-101 OS16', { variant: 'v3plus', backbone: 'resnet101', width: 0.125, blocks: [1, 1, 2, 3] }],
    ['v3+ Xception-65 OS16', { variant: 'v3plus', backbone: 'xception65', width: 0.125, blocks: [1, 1, 2, 1] }],
    ['v3+ Xception-65 OS8', { variant: 'v3plus', backbone: 'xception65', width: 0.125, blocks: [1, 1, 2, 1], outputStride: 8 }],
  ];
  for (const [label, spec] of small) {
    it(`${label}: ONNX Runtime gives tfjs's logits at 2x67x98 and 1x41x57 from one file`, async () => {
      const before = tf.memory().numTensors;
      const model = new DeepLab({ ...spec, classes: 7, seed: 3 });
      let s: ort.InferenceSession | undefined;
      try {
        randomise(model, 11);
        s = await session(exportOnnx(model));
        const big = await parityAt(model, s, [2, 67, 98, 3], 5);
        record(label, '2x67x98', big);
        assertParity(big, `${label} 2x67x98`);
        const other = await parityAt(model, s, [1, 41, 57, 3], 6);
        record(label, '1x41x57', other);
        assertParity(other, `${label} 1x41x57`);
      } finally {
        await s?.release();
        model.dispose();
      }
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    });
  }

  it('the jfzhang95 layout is another graph than the paper one with the same weights (its zero padding before the expansion)', async () => {
    const logits: Float32Array[] = [];
    for (const layout of ['paper', 'jfzhang95'] as const) {
      const model = new DeepLab({ variant: 'v3plus', backbone: 'mobilenetv2', layout, width: 0.25, classes: 7, seed: 3 });
      randomise(model, 11);
      const s = await session(exportOnnx(model));
      logits.push((await runOrt(s, new Float32Array(49 * 49 * 3).fill(0.5), [1, 49, 49, 3])).data as Float32Array);
      await s.release();
      model.dispose();
    }
    const p = compare(logits[0], logits[1], 7);
    assert.ok(p.maxAbs > 1e-2 * p.range, `the layouts differ by only ${p.maxAbs} (range ${p.range})`);
  });

  // The published widths at a moderate size (full-size 513 parity is in bench/).
  const full: [string, Partial<ModelSpec>][] = [
    ['v3 paper ResNet-101 OS8, full width', { variant: 'v3', outputStride: 8 }],
    ['v3+ MobileNetV2 OS16, full width', { variant: 'v3plus', backbone: 'mobilenetv2' }],
  ];
  for (const [label, spec] of full) {
    it(`${label}: ONNX Runtime gives tfjs's logits at 1x129x129`, async () => {
      const model = new DeepLab({ ...spec, seed: 4 });
      let s: ort.InferenceSession | undefined;
      try {
        randomise(model, 21);
        s = await session(exportOnnx(model));
        const p = await parityAt(model, s, [1, 129, 129, 3], 7);
        record(label, '1x129x129', p);
        assertParity(p, label);
      } finally {
        await s?.release();
        model.dispose();
      }
    });
  }

  it('the graph: opset 17, IR 8, BN folded away, no dropout or aux head, symbolic N/H/W, the metadata', async () => {
    const model = new DeepLab({ variant: 'v3', backbone: 'resnet50', layout: 'torchvision', width: 0.125, blocks: [1, 1, 2, 2], outputStride: 8, aux: true, classes: 5 });
    try {
      const classNames = ['a', 'b', 'c', 'd', 'e'];
      const bytes = exportOnnx(model, { preprocessing: 'imagenet', classNames, meta: { iteration: 30 }, metadata: { 'site.note': 'x' } });
      const m = decode(bytes);
      const graph = m.graph!;
      const nodes = graph.node ?? [];
      const initializers = graph.initializer ?? [];
      assert.equal(m.irVersion, 8);
      assert.deepEqual(m.opsetImport?.map((o) => [o.domain, o.version]), [['', 17]]);
      const ops = new Set(nodes.map((n) => n.opType));
      for (const absent of ['BatchNormalization', 'Dropout']) assert.ok(!ops.has(absent), `${absent} in the graph`);
      // Every conv of the network but the aux head's is there, once.
      const convs = [...model.store.trainable.keys()].filter((k) => /\.weight$/.test(k) && !k.startsWith('aux.'));
      assert.equal(nodes.filter((n) => n.opType === 'Conv').length, convs.length);
      assert.ok(!initializers.some((t) => t.name?.startsWith('aux.')), 'aux weights exported');
      assert.equal(initializers.filter((t) => /running_|gamma|beta/.test(t.name ?? '')).length, 0, 'BN tensors exported');

      const [input, output] = [graph.input ?? [], graph.output ?? []];
      assert.equal(input.length, 1);
      assert.equal(output.length, 1);
      const dims = (v: onnx.IValueInfoProto) => (v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || d.dimValue);
      assert.equal(input[0].name, ONNX_INPUT);
      assert.deepEqual(dims(input[0]), ['N', 'H', 'W', 3]);
      assert.equal(output[0].name, ONNX_OUTPUT);
      assert.deepEqual(dims(output[0]), ['N', 'logits_height', 'logits_width', 5]);

      const meta = metadata(m);
      assert.deepEqual(JSON.parse(meta[ONNX_META.spec]), model.spec);
      assert.equal(meta[ONNX_META.logitStride], '8');
      assert.equal(meta[ONNX_META.alignCorners], 'false', 'torchvision resizes with half-pixel centres');
      assert.equal(meta[ONNX_META.preprocessing], 'imagenet');
      assert.deepEqual(JSON.parse(meta[ONNX_META.classNames]), classNames);
      assert.deepEqual(JSON.parse(meta[ONNX_META.meta]), { iteration: 30 });
      assert.equal(meta['site.note'], 'x');

      const s = await session(bytes);
      assert.deepEqual([s.inputNames, s.outputNames], [[ONNX_INPUT], [ONNX_OUTPUT]]);
      await s.release();

      assert.throws(() => exportOnnx(model, { metadata: { [ONNX_META.spec]: '{}' } }), /reserved/);
      assert.throws(() => exportOnnx(model, { classNames: ['a'] }), /1 class names for 5 classes/);
    } finally {
      model.dispose();
    }
  });

  it('v3+ says its logits are at stride 4 with corners aligned', () => {
    const model = new DeepLab({ variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125 });
    try {
      const meta = metadata(decode(exportOnnx(model)));
      assert.equal(meta[ONNX_META.logitStride], '4');
      assert.equal(meta[ONNX_META.alignCorners], 'true');
    } finally {
      model.dispose();
    }
  });

  describe('the command line and the file export', () => {
    let tmp: string;
    const out: string[] = [];
    const sink = { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream;
    before(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deeplab-onnx-'));
    });
    after(() => {
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    it('exports a saved model folder: the file runs, matches tfjs and carries the manifest', async () => {
      const model = new DeepLab({ variant: 'v3plus', backbone: 'mobilenetv2', width: 0.25, classes: 3 });
      randomise(model, 31);
      const dir = path.join(tmp, 'saved');
      const file = path.join(tmp, 'out', 'model.onnx');
      let s: ort.InferenceSession | undefined;
      try {
        await saveModel(model, dir, 'tanh', { classNames: ['bg', 'cat', 'dog'], meta: { iteration: 12 } });
        out.length = 0;
        assert.equal(await cli(['export', '--onnx', file, dir], sink, sink), 0);
        assert.match(out.join(''), /model\.onnx: DeepLab v3plus mobilenetv2 \(3 classes, logits at stride 4\), \d+\.\d MB/);
        assert.deepEqual(fs.readdirSync(path.dirname(file)), ['model.onnx'], 'no temporary file left');
        const bytes = fs.readFileSync(file);
        const meta = metadata(decode(bytes));
        assert.equal(meta[ONNX_META.preprocessing], 'tanh');
        assert.deepEqual(JSON.parse(meta[ONNX_META.classNames]), ['bg', 'cat', 'dog']);
        assert.deepEqual(JSON.parse(meta[ONNX_META.meta]), { iteration: 12 });
        s = await session(bytes);
        const p = await parityAt(model, s, [1, 53, 61, 3], 8);
        record('CLI export of a saved v3+ MobileNetV2', '1x53x61', p);
        assertParity(p, 'exported saved model');
      } finally {
        await s?.release();
        model.dispose();
      }
    });

    it('exports a PyTorch checkpoint (jfzhang95 v3+ MobileNetV2): ONNX Runtime matches PyTorch', async () => {
      runTorchPython(TORCH_SCRIPT, [vocSample('vainf_582'), TORCH_OUT, JF_CASE]);
      const info = JSON.parse(fs.readFileSync(path.join(TORCH_OUT, `${JF_CASE}.json`), 'utf8')) as { input: number[]; logits: number[] };
      const f32 = (f: string) => {
        const b = fs.readFileSync(path.join(TORCH_OUT, f));
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
      };
      const file = path.join(tmp, 'jf.onnx');
      out.length = 0;
      assert.equal(await cli(['export', '--onnx', file, path.join(TORCH_OUT, `${JF_CASE}.zip.pth`)], sink, sink), 0);
      assert.match(out.join(''), /DeepLab v3plus mobilenetv2 \(21 classes, logits at stride 4\)/);
      const s = await session(fs.readFileSync(file));
      try {
        const got = await runOrt(s, f32(`${JF_CASE}.input.f32`), info.input);
        assert.deepEqual(got.dims, info.logits);
        const p = compare(f32(`${JF_CASE}.logits.f32`), got.data as Float32Array, info.logits[3]);
        record('CLI export of jfzhang95 checkpoint vs PyTorch', info.input.slice(0, 3).join('x'), p);
        assert.ok(p.maxAbs <= 1e-4 * p.range, `max abs ${p.maxAbs} exceeds 1e-4 of PyTorch's logits' range ${p.range}`);
        assert.ok(p.argmax >= 0.999, `argmax agrees on ${(100 * p.argmax).toFixed(3)} %`);
      } finally {
        await s.release();
      }
    });

    it('refuses what it cannot export, saying why', async () => {
      await assert.rejects(cli(['export', tmp], sink, sink), /--onnx/);
      fs.mkdirSync(path.join(tmp, 'empty'), { recursive: true });
      await assert.rejects(cli(['export', '--onnx', path.join(tmp, 'x.onnx'), path.join(tmp, 'empty')], sink, sink), /not a saved model/);
      await assert.rejects(cli(['export', '--onnx', path.join(tmp, 'x.onnx'), path.join(tmp, 'missing.pth')], sink, sink), /no such file/);
      assert.ok(!fs.existsSync(path.join(tmp, 'x.onnx')));
    });
  });
});
