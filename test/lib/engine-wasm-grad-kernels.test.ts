import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../helpers/tf-setup';
import {
  registerTrainingKernels, registerWasmGradKernels, replacedKernels, trainingKernelsRegistered, TRAINING_KERNELS,
} from '../../lib/engine/wasm-grad-kernels';
import { assertGradients, randomTensor } from '../../lib/engine/gradcheck';
import { pointwiseOptions } from '../../lib/engine/pointwise-filter-grad';
import { seededRandom } from '../../lib/runtime/random';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

/** Runs a kernel on the named backend from plain arrays; returns shape and values. */
async function runOn(
  backend: string, kernel: string, inputs: Record<string, { shape: number[]; data: Float32Array | Int32Array }>,
  attrs: Record<string, unknown>,
): Promise<{ shape: number[]; data: Float32Array }> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const ins: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(inputs)) ins[k] = tf.tensor(v.data, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32');
    const out = tf.engine().runKernel(kernel, ins, attrs as tf.NamedAttrMap) as tf.Tensor;
    return { shape: out.shape, data: Float32Array.from(out.dataSync()) };
  });
}

function randomArray(shape: number[], seed: number): { shape: number[]; data: Float32Array } {
  const rnd = seededRandom(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = 2 * rnd() - 1;
  return { shape, data };
}

function assertClose(actual: { shape: number[]; data: Float32Array }, expected: { shape: number[]; data: Float32Array }, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  let scale = 1e-6;
  for (const v of expected.data) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < expected.data.length; i++) worst = Math.max(worst, Math.abs(actual.data[i] - expected.data[i]));
  assert.ok(worst <= 1e-5 * scale + 1e-6, `${what}: max difference ${worst} (values up to ${scale})`);
}

/** Output extent of a convolution, to build dy of the right shape. */
function outShape(x: number[], f: number[], stride: number, dilation: number, pad: Pad, depthwise: boolean): number[] {
  const info = tf.backend_util.computeConv2DInfo(x as [number, number, number, number], f as [number, number, number, number],
    stride, dilation, pad, undefined, depthwise);
  return info.outShape;
}

type Arr = { shape: number[]; data: Float32Array };

/**
 * Brute-force (float64) dx and dW of a convolution: the reference where the cpu backend has
 * none (its depthwise backprop kernels ignore dilation) or is slow.
 */
function bruteGrads(depthwise: boolean, x: Arr, f: Arr, dy: Arr, stride: number, dilation: number, pad: Pad): { dx: Arr; dw: Arr } {
  const [n, h, w, c] = x.shape;
  const [kh, kw, , m] = f.shape;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], f.shape as [number, number, number, number],
    stride, dilation, pad, undefined, depthwise);
  const [, ho, wo, co] = dy.shape;
  const dx = new Float64Array(x.data.length);
  const dw = new Float64Array(f.data.length);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        const yo = ((b * ho + oy) * wo + ox) * co;
        for (let i = 0; i < kh; i++) {
          const iy = oy * stride + i * dilation - info.padInfo.top;
          if (iy < 0 || iy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const ix = ox * stride + j * dilation - info.padInfo.left;
            if (ix < 0 || ix >= w) continue;
            const xo = ((b * h + iy) * w + ix) * c;
            for (let ci = 0; ci < c; ci++) {
              const fo = ((i * kw + j) * c + ci) * m;
              // Depthwise: input channel ci feeds outputs ci*m..ci*m+m-1; dense: all m (= co) outputs.
              const yc = depthwise ? yo + ci * m : yo;
              for (let o = 0; o < m; o++) {
                const g = dy.data[yc + o];
                dw[fo + o] += x.data[xo + ci] * g;
                dx[xo + ci] += f.data[fo + o] * g;
              }
            }
          }
        }
      }
    }
  }
  return { dx: { shape: x.shape, data: Float32Array.from(dx) }, dw: { shape: f.shape, data: Float32Array.from(dw) } };
}

const PADS: Array<[string, Pad]> = [
  ['same', 'same'],
  ['valid', 'valid'],
  ['number 1', 1],
  ['explicit asymmetric', [[0, 0], [2, 0], [1, 3], [0, 0]]],
];

describe('lib/engine/wasm-grad-kernels: gradient kernels for the wasm backend', function () {
  onBackend('wasm');

  it('are registered by initBackend, idempotently, replacing only the slow or wrong native kernels', async () => {
    assert.ok(trainingKernelsRegistered('wasm'));
    registerWasmGradKernels();
    registerTrainingKernels('wasm');
    assert.ok(trainingKernelsRegistered('wasm'));
    assert.deepEqual([...replacedKernels.keys()].filter((k) => k.startsWith('wasm/')).sort(),
      ['wasm/AvgPoolGrad', 'wasm/Concat', 'wasm/Conv2DBackpropInput', 'wasm/Identity', 'wasm/ResizeBilinearGrad', 'wasm/SplitV']);
    assert.deepEqual(TRAINING_KERNELS.wasm.map((k) => k.kernelName).sort(), [
      'AvgPoolGrad', 'Concat', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput', 'Identity', 'ResizeBilinearGrad', 'SplitV', 'UnsortedSegmentSum']);
    assert.deepEqual(TRAINING_KERNELS.cpu.map((k) => k.kernelName).sort(), ['AvgPoolGrad', 'ResizeBilinearGrad']);
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'cpu')?.backendName, 'cpu', 'cpu keeps its own conv kernels');
  });

  describe('match the cpu backend', () => {
    let seed = 100;
    for (const k of [1, 3, 7]) {
      for (const stride of [1, 2]) {
        for (const [padName, pad] of PADS) {
          it(`Conv2D backprop: ${k}x${k} kernel, stride ${stride}, pad ${padName}`, async () => {
            const rnd = seededRandom(seed++);
            const n = 1 + Math.floor(rnd() * 2);
            const h = 7 + Math.floor(rnd() * 5);
            const w = 7 + Math.floor(rnd() * 5);
            const ci = 1 + Math.floor(rnd() * 4);
            const co = 1 + Math.floor(rnd() * 4);
            const xs = [n, h, w, ci];
            const fs = [k, k, ci, co];
            const x = randomArray(xs, seed * 7);
            const f = randomArray(fs, seed * 7 + 1);
            const dy = randomArray(outShape(xs, fs, stride, 1, pad, false), seed * 7 + 2);
            const fAttrs = { strides: stride, pad, dataFormat: 'NHWC', filterShape: fs };
            const iAttrs = { strides: stride, pad, dataFormat: 'NHWC', inputShape: xs };
            const gotW = await runOn('wasm', 'Conv2DBackpropFilter', { x, dy }, fAttrs);
            const gotX = await runOn('wasm', 'Conv2DBackpropInput', { dy, filter: f }, iAttrs);
            assertClose(gotW, await runOn('cpu', 'Conv2DBackpropFilter', { x, dy }, fAttrs), `filter grad ${xs}`);
            assertClose(gotX, await runOn('cpu', 'Conv2DBackpropInput', { dy, filter: f }, iAttrs), `input grad ${xs}`);
            const ref = bruteGrads(false, x, f, dy, stride, 1, pad);
            assertClose(gotW, ref.dw, `filter grad ${xs} (brute force)`);
            assertClose(gotX, ref.dx, `input grad ${xs} (brute force)`);
          });
        }
      }
    }

    for (const k of [1, 3, 7]) {
      for (const [stride, dilation] of [[1, 1], [2, 1], [1, 2]]) {
        for (const [padName, pad] of PADS) {
          for (const mult of [1, 2]) {
            if (k === 1 && dilation > 1) continue;
            it(`DepthwiseConv2dNative backprop: ${k}x${k}, stride ${stride}, dilation ${dilation}, pad ${padName}, multiplier ${mult}`, async () => {
              const rnd = seededRandom(seed++);
              const n = 1 + Math.floor(rnd() * 2);
              const h = (dilation > 1 ? 13 : 7) + Math.floor(rnd() * 5);
              const w = (dilation > 1 ? 13 : 7) + Math.floor(rnd() * 5);
              const c = 1 + Math.floor(rnd() * 4);
              const xs = [n, h, w, c];
              const fs = [k, k, c, mult];
              const x = randomArray(xs, seed * 7);
              const f = randomArray(fs, seed * 7 + 1);
              const dy = randomArray(outShape(xs, fs, stride, dilation, pad, true), seed * 7 + 2);
              const fAttrs = { strides: stride, dilations: dilation, pad, filterShape: fs };
              const iAttrs = { strides: stride, dilations: dilation, pad, inputShape: xs };
              const gotW = await runOn('wasm', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, fAttrs);
              const gotX = await runOn('wasm', 'DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, iAttrs);
              if (dilation === 1) {
                assertClose(gotW, await runOn('cpu', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, fAttrs), `filter grad ${xs}`);
                assertClose(gotX, await runOn('cpu', 'DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, iAttrs), `input grad ${xs}`);
              }
              const ref = bruteGrads(true, x, f, dy, stride, dilation, pad);
              assertClose(gotW, ref.dw, `filter grad ${xs} (brute force)`);
              assertClose(gotX, ref.dx, `input grad ${xs} (brute force)`);
            });
          }
        }
      }
    }

    // Our SIMD depthwise filter and input gradients (depthwise-filter-grad.ts) run for channels in multiples of 4,
    // multiplier 1: every stride/dilation/padding, and both at once (the composed fallback has no such case).
    for (const k of [3, 5]) {
      for (const [stride, dilation] of [[1, 1], [2, 1], [1, 2], [1, 4], [2, 2]]) {
        for (const [padName, pad] of PADS) {
          it(`DepthwiseConv2dNative backprop, SIMD kernels: ${k}x${k}, stride ${stride}, dilation ${dilation}, pad ${padName}`, async () => {
            const rnd = seededRandom(seed++);
            const n = 1 + Math.floor(rnd() * 3);
            const h = 4 + (k - 1) * dilation + Math.floor(rnd() * 6);
            const w = 4 + (k - 1) * dilation + Math.floor(rnd() * 6);
            const c = 4 * (1 + Math.floor(rnd() * 3));
            const xs = [n, h, w, c];
            const fs = [k, k, c, 1];
            const x = randomArray(xs, seed * 7);
            const f = randomArray(fs, seed * 7 + 1);
            const dy = randomArray(outShape(xs, fs, stride, dilation, pad, true), seed * 7 + 2);
            const fAttrs = { strides: stride, dilations: dilation, pad, filterShape: fs };
            const before = tf.memory().numTensors;
            const gotW = await runOn('wasm', 'DepthwiseConv2dNativeBackpropFilter', { x, dy }, fAttrs);
            const gotX = await runOn('wasm', 'DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, { strides: stride, dilations: dilation, pad, inputShape: xs });
            assert.equal(tf.memory().numTensors, before, 'tensors leaked');
            const ref = bruteGrads(true, x, f, dy, stride, dilation, pad);
            assertClose(gotW, ref.dw, `filter grad ${xs} (brute force)`);
            assertClose(gotX, ref.dx, `input grad ${xs} (brute force)`);
          });
        }
      }
    }

    // Our SIMD 1x1 filter gradient (pointwise-filter-grad.ts): channels in multiples of 4, with and
    // without the 4-channel tail tile, pixel counts across chunk boundaries.
    for (const [n, h, w, ci, co, chunkBytes] of [[1, 1, 1, 4, 4, 0], [2, 5, 7, 8, 12, 0], [3, 9, 11, 12, 8, 700], [1, 33, 35, 4, 20, 96], [2, 13, 3, 40, 36, 5000]]) {
      it(`Conv2DBackpropFilter, SIMD kernel: 1x1, x [${n},${h},${w},${ci}], ${co} outputs${chunkBytes ? `, chunks of ${chunkBytes} bytes` : ''}`, async () => {
        const savedChunk = pointwiseOptions.chunkBytes;
        if (chunkBytes) pointwiseOptions.chunkBytes = chunkBytes;
        const xs = [n, h, w, ci];
        const fs = [1, 1, ci, co];
        const x = randomArray(xs, seed * 7);
        const f = randomArray(fs, seed * 7 + 1);
        const dy = randomArray([n, h, w, co], seed++ * 7 + 2);
        const before = tf.memory().numTensors;
        const got = await runOn('wasm', 'Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', filterShape: fs })
          .finally(() => { pointwiseOptions.chunkBytes = savedChunk; });
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
        assertClose(got, bruteGrads(false, x, f, dy, 1, 1, 'same').dw, `filter grad ${xs} (brute force)`);
      });
    }

    // Both forms of the filter gradient above 1x1: the convolution (8 images or more, under 128 input
    // channels) and the im2col product (fewer images, or wider layers).
    for (const [n, ci, stride, padName] of [[8, 6, 1, 'same'], [8, 6, 2, 'explicit asymmetric'], [9, 5, 1, 'valid'], [8, 128, 1, 'same'], [2, 6, 2, 'number 1']] as const) {
      it(`Conv2DBackpropFilter 3x3: ${n} images, ${ci} input channels, stride ${stride}, pad ${padName}`, async () => {
        const pad = PADS.find(([name]) => name === padName)![1];
        const xs = [n, 9, 8, ci];
        const fs = [3, 3, ci, 5];
        const x = randomArray(xs, seed * 7);
        const f = randomArray(fs, seed * 7 + 1);
        const dy = randomArray(outShape(xs, fs, stride, 1, pad, false), seed++ * 7 + 2);
        const got = await runOn('wasm', 'Conv2DBackpropFilter', { x, dy }, { strides: stride, pad, filterShape: fs });
        assertClose(got, bruteGrads(false, x, f, dy, stride, 1, pad).dw, `filter grad ${xs} (brute force)`);
      });
    }

    it('Conv2DBackpropFilter on a large layer (an 11x11 kernel)', async () => {
      const xs = [2, 33, 33, 64];
      const fs = [11, 11, 64, 2];
      const x = randomArray(xs, 5);
      const dy = randomArray(outShape(xs, fs, 1, 1, 'same', false), 6);
      const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: fs };
      // Brute force here: the cpu backend's kernel takes seconds on this layer.
      assertClose(await runOn('wasm', 'Conv2DBackpropFilter', { x, dy }, attrs),
        bruteGrads(false, x, randomArray(fs, 7), dy, 1, 1, 'same').dw, 'chunked filter grad');
    });

    it('UnsortedSegmentSum (gather gradient), dropping out-of-range ids', async () => {
      const x = randomArray([6, 3], 9);
      const ids = { shape: [6], data: Int32Array.from([2, 0, 2, -1, 4, 0]) };
      const got = await runOn('wasm', 'UnsortedSegmentSum', { x, segmentIds: ids }, { numSegments: 4 });
      const want = new Float32Array(12);
      ids.data.forEach((s, k) => {
        if (s >= 0 && s < 4) for (let e = 0; e < 3; e++) want[s * 3 + e] += x.data[k * 3 + e];
      });
      assertClose(got, { shape: [4, 3], data: want }, 'segment sum');
      const valid = { shape: [6], data: Int32Array.from([2, 0, 2, 1, 3, 0]) };
      assertClose(await runOn('wasm', 'UnsortedSegmentSum', { x, segmentIds: valid }, { numSegments: 4 }),
        await runOn('cpu', 'UnsortedSegmentSum', { x, segmentIds: valid }, { numSegments: 4 }), 'vs cpu');
    });
  });

  it('Identity shares the buffer: a clone outlives its source, and the memory goes with the last of them', () => {
    const bytes = tf.memory().numBytes;
    const x = tf.tensor([1.5, -2, 3, 4], [2, 2]);
    const y = tf.clone(x);
    const strings = tf.tensor(['a', 'b']);
    const s = tf.clone(strings);
    assert.deepEqual(Array.from(y.dataSync()), [1.5, -2, 3, 4]);
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1.5, -2, 3, 4]);
    assert.deepEqual(s.arraySync(), ['a', 'b']);
    // A variable assigned from a clone does not write through to the source.
    const c = tf.clone(y);
    const v = tf.variable(c);
    const zeros = tf.zeros([2, 2]);
    v.assign(zeros);
    assert.deepEqual(Array.from(y.dataSync()), [1.5, -2, 3, 4]);
    tf.dispose([y, c, v, s, strings, zeros]);
    assert.equal(tf.memory().numBytes, bytes);
  });

  it('Concat and SplitV along the last axis (SIMD moves) equal the cpu backend; other axes and dtypes fall back', async () => {
    const a = randomArray([2, 3, 5, 4], 21);
    const b = randomArray([2, 3, 5, 7], 22);
    const c = randomArray([2, 3, 5, 1], 23);
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const [ta, tb, tc] = [a, b, c].map((v) => tf.tensor(v.data, v.shape));
        const cat = tf.concat([ta, tb, tc], 3);
        const catInner = tf.concat([ta, ta], 1);
        const parts = tf.split(cat, [5, 6, 1], -1);
        const even = tf.split(tb, 7, 3);
        const ints = tf.concat([tf.cast(ta, 'int32'), tf.cast(tc, 'int32')], 3);
        return [cat, catInner, ...parts, ...even, ints].map((t) => ({ shape: t.shape, data: Float32Array.from(t.dataSync()) }));
      });
    };
    const before = tf.memory().numTensors;
    const got = await run('wasm');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    const want = await run('cpu');
    await tf.setBackend('wasm');
    got.forEach((g, i) => assert.deepEqual(g, want[i], `output ${i}`));
  });

  it('ReLU6 passes the gradient exactly where 0 < x < 6 (as PyTorch), as tfjs does elsewhere', () => {
    tf.tidy(() => {
      const x = tf.tensor([-3, -1e-30, 0, 1e-30, 0.5, 5.999, 6, 6.001, 1e30, -1e30]);
      const dy = tf.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const [dx] = tf.grads((a: tf.Tensor) => tf.relu6(a))([x], dy);
      assert.deepEqual(Array.from(dx.dataSync()), [0, 0, 0, 4, 5, 6, 0, 0, 0, 0]);
      // 12 values: our SIMD kernel (elementwise-wasm.ts) on wasm.
      const x12 = tf.concat([x, tf.tensor([3, -0])]);
      const [dx12] = tf.grads((a: tf.Tensor) => tf.relu6(a))([x12], tf.range(1, 13));
      assert.deepEqual(Array.from(dx12.dataSync()), [0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 11, 0]);
      // tfjs's own formula on random inputs (which never hit 6 exactly).
      const asTensor = (a: { shape: number[]; data: Float32Array }) => tf.tensor(a.data, a.shape);
      const r = tf.mul(asTensor(randomArray([4, 9, 9, 5], 3)), 8);
      const g = asTensor(randomArray([4, 9, 9, 5], 4));
      const want = tf.mul(g, tf.cast(tf.mul(tf.lessEqual(r, 6), tf.step(r)), 'float32'));
      // (+ 0: tfjs's product leaves -0 where dy < 0, our mask +0.)
      assert.deepEqual(Array.from(tf.grads((a: tf.Tensor) => tf.relu6(a))([r], g)[0].dataSync(), (v) => v + 0), Array.from(want.dataSync(), (v) => v + 0));
    });
  });

  it("wasm's own Conv2DBackpropInput (replaced for speed) is correct with stride 2 and explicit padding", async () => {
    const native = replacedKernels.get('wasm/Conv2DBackpropInput');
    assert.ok(native, 'the native kernel was kept');
    for (const [pad, k] of [[[[0, 0], [1, 1], [1, 1], [0, 0]], 3], [[[0, 0], [0, 1], [2, 0], [0, 0]], 3], ['same', 7]] as Array<[Pad, number]>) {
      const xs = [2, 9, 8, 3];
      const fs = [k, k, 3, 4];
      const dy = randomArray(outShape(xs, fs, 2, 1, pad, false), 11);
      const f = randomArray(fs, 12);
      const attrs = { strides: 2, pad, dataFormat: 'NHWC', inputShape: xs };
      await tf.setBackend('wasm');
      const got = tf.tidy(() => {
        const info = native.kernelFunc({
          inputs: { dy: tf.tensor(dy.data, dy.shape), filter: tf.tensor(f.data, f.shape) },
          backend: tf.backend(), attrs: attrs as unknown as tf.NamedAttrMap,
        }) as tf.TensorInfo;
        // Adopted by the engine: the tidy frees it.
        const t = tf.engine().makeTensorFromTensorInfo(info);
        return { shape: t.shape, data: Float32Array.from(t.dataSync()) };
      });
      assertClose(got, await runOn('cpu', 'Conv2DBackpropInput', { dy, filter: f }, attrs), `native input grad, pad ${JSON.stringify(pad)}`);
    }
  });

  describe('give gradients that match finite differences (tf.grads on wasm)', () => {
    beforeEach(async () => { await tf.setBackend('wasm'); });

    it('conv2d 3x3 stride 2 explicit asymmetric padding, batch 2', () => {
      const x = randomTensor([2, 5, 5, 2], 1);
      const f = randomTensor([3, 3, 2, 3], 2);
      assertGradients((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, [[0, 0], [1, 0], [0, 2], [0, 0]]), [x, f],
        { label: 'conv2d s2' });
      tf.dispose([x, f]);
    });

    it('conv2d 1x1 and 7x7 (same padding)', () => {
      const x = randomTensor([1, 7, 7, 2], 3);
      for (const k of [1, 7]) {
        const f = randomTensor([k, k, 2, 2], 4 + k);
        assertGradients((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), [x, f], { label: `conv2d ${k}x${k}` });
        f.dispose();
      }
      x.dispose();
    });

    it('depthwiseConv2d 3x3, stride 1 and 2, channel multiplier 1 and 2', () => {
      const x = randomTensor([2, 5, 5, 2], 5);
      for (const mult of [1, 2]) {
        for (const stride of [1, 2] as const) {
          const f = randomTensor([3, 3, 2, mult], 6 + mult);
          assertGradients((a, b) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, [[0, 0], [1, 1], [1, 1], [0, 0]]),
            [x, f], { label: `depthwise stride ${stride} multiplier ${mult}` });
          f.dispose();
        }
      }
      x.dispose();
    });

    it('gather (UnsortedSegmentSum) with repeated indices', () => {
      const x = randomTensor([5, 3], 8);
      const idx = tf.tensor1d([4, 0, 4, 2], 'int32');
      assertGradients((a) => tf.gather(a, idx), [x], { label: 'gather' });
      tf.dispose([x, idx]);
    });
  });

  it('leave no tensors behind', async () => {
    await tf.setBackend('wasm');
    const x = randomTensor([2, 6, 6, 3], 1);
    const f = randomTensor([3, 3, 3, 2], 2);
    const d = randomTensor([3, 3, 3, 1], 3);
    const before = tf.memory().numTensors;
    const g = tf.grads((a, b, c) => tf.add(
      tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')),
      tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, c as tf.Tensor4D, 2, 'same'))))([x, f, d]);
    assert.equal(tf.memory().numTensors, before + 3);
    tf.dispose([...g, x, f, d]);
  });
});
