import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { DeepLab, ModelSpec, normalizeSpec } from '../../lib/models/deeplab';
import { ceilPoolSize } from '../../lib/models/layers';
import { tfReady } from '../helpers/tf-setup';

describe('lib/models: the DeepLab zoo', () => {
  before(async () => {
    await tfReady();
  });

  // Published figures: DeepLab v1 LargeFOV and v2 ResNet-101 ASPP-L prototxts (21 classes, BN scale and
  // shift counted, running statistics not); torchvision's documented counts for deeplabv3_resnet101 /
  // deeplabv3_resnet50 (60,996,202 / 42,004,074 with the aux head; 58,630,997 without).
  const published: [string, Partial<ModelSpec>, number][] = [
    ['v1 VGG-16 LargeFOV', { variant: 'v1' }, 20_505_429],
    ['v2 ResNet-101 ASPP-L', { variant: 'v2' }, 44_048_532],
    ['torchvision deeplabv3_resnet101 without aux', { variant: 'v3', layout: 'torchvision', outputStride: 8 }, 58_630_997],
    ['torchvision deeplabv3_resnet101 with aux', { variant: 'v3', layout: 'torchvision', outputStride: 8, aux: true }, 60_996_202],
    ['torchvision deeplabv3_resnet50 with aux', { variant: 'v3', backbone: 'resnet50', layout: 'torchvision', outputStride: 8, aux: true }, 42_004_074],
  ];
  for (const [name, spec, count] of published) {
    it(`has exactly the published ${count.toLocaleString('en')} parameters: ${name}`, () => {
      const before = tf.memory().numTensors;
      const m = new DeepLab(spec);
      try {
        assert.equal(m.paramCount(), count);
      } finally {
        m.dispose();
      }
      assert.equal(tf.memory().numTensors, before, 'dispose frees every variable');
    });
  }

  it('ceil-mode pooling size follows PyTorch/Caffe (DeepLab v2 stem: 161 -> 81, 257 -> 129)', () => {
    assert.equal(ceilPoolSize(161, 3, 2, 1), 81);
    assert.equal(ceilPoolSize(257, 3, 2, 1), 129);
    assert.equal(ceilPoolSize(6, 2, 2, 0), 3);
    assert.equal(ceilPoolSize(5, 2, 2, 0), 3);
    // The last window would start in the padding only: dropped.
    assert.equal(ceilPoolSize(4, 2, 2, 1), 3);
  });

  // Output sizes depend on the strides, pads and dilations only, so small-width variants from the
  // same builders check them fast. Expected: floor((n - 1) / s) + 1 at stride s.
  const sizeCases: [string, Partial<ModelSpec>, number][] = [
    ['v1', { variant: 'v1' }, 8],
    ['v2', { variant: 'v2' }, 8],
    ['v3 OS16', { variant: 'v3', outputStride: 16 }, 16],
    ['v3 OS8', { variant: 'v3', outputStride: 8 }, 8],
    ['v3 torchvision OS8', { variant: 'v3', layout: 'torchvision', outputStride: 8 }, 8],
    ['v3 torchvision OS16', { variant: 'v3', layout: 'torchvision', outputStride: 16 }, 16],
    ['v3 MobileNetV2 OS16', { variant: 'v3', backbone: 'mobilenetv2', outputStride: 16 }, 16],
    ['v3+ MobileNetV2 OS16 (decoder at stride 4)', { variant: 'v3plus', backbone: 'mobilenetv2', outputStride: 16 }, 4],
    ['v3+ ResNet-101 OS16 (decoder at stride 4)', { variant: 'v3plus', backbone: 'resnet101', outputStride: 16 }, 4],
    ['v3+ ResNet-101 OS8 (decoder at stride 4)', { variant: 'v3plus', backbone: 'resnet101', outputStride: 8 }, 4],
    ['v3+ Xception-65 OS16 (decoder at stride 4)', { variant: 'v3plus', backbone: 'xception65', outputStride: 16 }, 4],
    ['v3+ Xception-65 OS8 (decoder at stride 4)', { variant: 'v3plus', backbone: 'xception65', outputStride: 8 }, 4],
  ];
  for (const [name, spec, stride] of sizeCases) {
    it(`${name}: 321 -> ${Math.floor(320 / stride) + 1}, 513 -> ${Math.floor(512 / stride) + 1}`, () => {
      const m = new DeepLab({ ...spec, width: 0.0625, blocks: [1, 1, 2, 3], classes: 5 });
      try {
        for (const n of [321, 513]) {
          const y = tf.tidy(() => m.forward(tf.zeros([1, n, n, 3])).logits);
          assert.deepEqual(y.shape, [1, Math.floor((n - 1) / stride) + 1, Math.floor((n - 1) / stride) + 1, 5]);
          y.dispose();
        }
      } finally {
        m.dispose();
      }
    });
  }

  it('the published v1 and v2 sizes: 321 -> 41x41 and 513 -> 65x65 at full width', () => {
    const m = new DeepLab({ variant: 'v2', blocks: [1, 1, 1, 1] });
    try {
      const y = tf.tidy(() => m.forward(tf.zeros([1, 321, 321, 3])).logits);
      assert.deepEqual(y.shape, [1, 41, 41, 21]);
      y.dispose();
    } finally {
      m.dispose();
    }
  });

  it('the torchvision aux head runs only while training, on layer3', () => {
    const m = new DeepLab({ variant: 'v3', layout: 'torchvision', outputStride: 8, aux: true, width: 0.0625, blocks: [1, 1, 1, 1], classes: 3 });
    try {
      const infer = m.forward(tf.zeros([1, 65, 65, 3]));
      assert.equal(infer.aux, undefined);
      infer.logits.dispose();
      const train = tf.tidy(() => {
        const o = m.forward(tf.zeros([2, 65, 65, 3]), { training: true, freezeBN: false });
        return [o.logits, o.aux!];
      });
      assert.deepEqual(train[1].shape, [2, 9, 9, 3]);
      tf.dispose(train);
    } finally {
      m.dispose();
    }
  });

  it('the same seed builds the same network; another seed another one', async () => {
    const a = new DeepLab({ variant: 'v3plus', width: 0.125, seed: 7 });
    const b = new DeepLab({ variant: 'v3plus', width: 0.125, seed: 7 });
    const c = new DeepLab({ variant: 'v3plus', width: 0.125, seed: 8 });
    try {
      const x = tf.randomUniform([1, 65, 65, 3], -1, 1, 'float32', 3);
      const [ya, yb, yc] = [a, b, c].map((m) => m.forward(x as tf.Tensor4D).logits);
      assert.equal(tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0], 0);
      assert.ok(tf.max(tf.abs(tf.sub(ya, yc))).dataSync()[0] > 1e-6);
      tf.dispose([x, ya, yb, yc]);
    } finally {
      [a, b, c].forEach((m) => m.dispose());
    }
  });

  it('refuses impossible combinations with clear messages', () => {
    assert.throws(() => normalizeSpec({ variant: 'v1', backbone: 'resnet101' }), /v1 supports the backbones vgg16/);
    assert.throws(() => normalizeSpec({ variant: 'v2', outputStride: 16 }), /output stride 8/);
    assert.throws(() => normalizeSpec({ variant: 'v3plus', layout: 'torchvision' }), /torchvision layout exists for v3 only/);
    assert.throws(() => normalizeSpec({ classes: 0 }), /classes must be an integer/);
    assert.throws(() => normalizeSpec({ variant: 'v9' as never }), /unknown DeepLab variant/);
  });

  it('Xception-65: the encoder reaches the output stride and the decoder takes the stride-4 entry features', () => {
    for (const os of [8, 16] as const) {
      const m = new DeepLab({ variant: 'v3plus', backbone: 'xception65', outputStride: os, width: 0.0625, blocks: [1, 1, 1, 1], classes: 3 });
      try {
        const names = [...m.store.trainable.keys()];
        // 3 entry blocks + 1 middle unit (blocks[2]) + 2 exit blocks, each 3 separable convs.
        assert.equal(names.filter((n) => n.endsWith('.pointwise.conv.weight')).length, 6 * 3);
        assert.equal(names.filter((n) => n.includes('shortcut.conv.weight')).length, 4);
        const y = tf.tidy(() => m.forward(tf.zeros([1, 65, 65, 3])).logits);
        assert.deepEqual(y.shape, [1, 17, 17, 3]);
        y.dispose();
      } finally {
        m.dispose();
      }
    }
  });
});
