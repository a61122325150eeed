/**
 * ONNX export at full size: for each published network (random weights, random BN statistics),
 * the export's time and file size, ONNX Runtime (CPU, 1 thread) against our tfjs forward on the
 * active backend at 513x513 (ms per image), and their agreement (max abs difference over the
 * logits' range, argmax agreement).
 *
 *   node dist/bench/onnx-export.js [--quick]     (--quick: v3 ResNet-101 OS8 and v3+ MobileNetV2 only)
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../lib/engine/backend';
import { DeepLab, ModelSpec } from '../lib/models/deeplab';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT } from '../lib/models/onnx/export';

const quick = process.argv.includes('--quick');
const SIZE = 513;

function randomiseStats(model: DeepLab): void {
  let seed = 100;
  tf.tidy(() => {
    for (const [name, v] of model.store.all()) {
      if (name.endsWith('.gamma')) v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', seed++));
      else if (name.endsWith('.beta') || name.endsWith('.running_mean')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', seed++));
      else if (name.endsWith('.running_var')) v.assign(tf.randomUniform(v.shape, 0.3, 3, 'float32', seed++));
    }
  });
}

async function main(): Promise<void> {
  const backend = await initBackend();
  console.log(`# 1x${SIZE}x${SIZE}, tfjs on ${backend} vs ONNX Runtime ${ort.env.versions.common} CPU, 1 thread each (one run after a warm-up)`);
  const cases: [string, Partial<ModelSpec>][] = [
    ['v3 ResNet-101 (OS8)', { variant: 'v3', outputStride: 8 }],
    ['v3+ MobileNetV2 (OS16)', { variant: 'v3plus', backbone: 'mobilenetv2' }],
  ];
  if (!quick) {
    cases.push(
      ['v1 VGG-16 LargeFOV (OS8)', { variant: 'v1' }],
      ['v2 ResNet-101 ASPP-L (OS8)', { variant: 'v2' }],
      ['v3 ResNet-101 (OS16)', { variant: 'v3', outputStride: 16 }],
      ['v3 ResNet-50 torchvision (OS8)', { variant: 'v3', backbone: 'resnet50', layout: 'torchvision', outputStride: 8 }],
      ['v3 MobileNetV2 (OS16)', { variant: 'v3', backbone: 'mobilenetv2' }],
      ['v3+ ResNet-101 (OS16)', { variant: 'v3plus', backbone: 'resnet101' }],
      ['v3+ Xception-65 (OS16)', { variant: 'v3plus', backbone: 'xception65' }],
      ['v3+ MobileNetV2 jfzhang95 (OS16)', { variant: 'v3plus', backbone: 'mobilenetv2', layout: 'jfzhang95' }],
    );
  }
  console.log('network | export ms | MB | session ms | tfjs ms | ORT ms | max abs / range | argmax');
  for (const [name, spec] of cases) {
    const model = new DeepLab(spec);
    randomiseStats(model);
    let t = performance.now();
    const bytes = exportOnnx(model);
    const exportMs = performance.now() - t;
    t = performance.now();
    const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
    const sessionMs = performance.now() - t;
    const x = tf.randomUniform([1, SIZE, SIZE, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    const input = new ort.Tensor('float32', x.dataSync() as Float32Array, [1, SIZE, SIZE, 3]);
    const forward = () => tf.tidy(() => model.forward(x).logits);
    forward().dispose();
    t = performance.now();
    const ref = forward();
    const a = ref.dataSync() as Float32Array;
    const tfjsMs = performance.now() - t;
    await session.run({ [ONNX_INPUT]: input });
    t = performance.now();
    const b = (await session.run({ [ONNX_INPUT]: input }))[ONNX_OUTPUT].data as Float32Array;
    const ortMs = performance.now() - t;
    const classes = model.spec.classes;
    let maxAbs = 0;
    let lo = Infinity;
    let hi = -Infinity;
    let agree = 0;
    for (let p = 0; p < a.length / classes; p++) {
      let ia = 0;
      let ib = 0;
      for (let c = 0; c < classes; c++) {
        const i = p * classes + c;
        maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
        lo = Math.min(lo, a[i]);
        hi = Math.max(hi, a[i]);
        if (a[i] > a[p * classes + ia]) ia = c;
        if (b[i] > b[p * classes + ib]) ib = c;
      }
      if (ia === ib) agree++;
    }
    console.log(`${name} | ${exportMs.toFixed(0)} | ${(bytes.length / 1e6).toFixed(1)} | ${sessionMs.toFixed(0)} | ${tfjsMs.toFixed(0)} | ${ortMs.toFixed(0)} | ` +
      `${(maxAbs / (hi - lo)).toExponential(2)} | ${((100 * agree) / (a.length / classes)).toFixed(2)} %`);
    tf.dispose([x, ref]);
    await session.release();
    model.dispose();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
