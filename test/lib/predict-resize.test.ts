/**
 * The forward wrapper resizes a photo to each run's size in JavaScript (bilinearRgb) before the
 * pixels enter tfjs, so the engine's memory never holds the full-size photo. These tests hold it to
 * the path it replaced: the full image as an int32 tensor, normalised, then resized by tfjs.
 */
import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import { RawImage, ScoreMap } from '../../lib/contract';
import { planInference } from '../../lib/inference/plan';
import { deeplabNet, forwardRunAsync, imageTensor, predictPlan, runImageTensor, SegNet } from '../../lib/inference/predict';
import { DeepLab } from '../../lib/models/deeplab';
import { bilinearRgb } from '../../lib/ops/image-resize';
import { tfReady } from '../helpers/tf-setup';
import { testImage } from '../helpers/test-image';

/** The replaced path: every run from the full-size int32 tensor, normalised and resized inside tfjs. */
async function fullSizePath(net: SegNet, image: RawImage, plan: ReturnType<typeof planInference>): Promise<ScoreMap[]> {
  const maps: ScoreMap[] = [];
  const src = imageTensor(image);
  try {
    for (const run of plan.runs) {
      const logits = await forwardRunAsync(net, src, run, { flip: plan.flip });
      const [n, height, width, classes] = logits.shape;
      const data = logits.dataSync() as Float32Array;
      logits.dispose();
      const per = height * width * classes;
      for (let b = 0; b < n; b++) maps.push({ width, height, classes, data: data.slice(b * per, (b + 1) * per), kind: 'logits', stride: net.logitStride });
    }
  } finally {
    src.dispose();
  }
  return maps;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('lib/inference: each run resized outside tfjs', () => {
  before(tfReady);

  for (const alignCorners of [true, false]) {
    it(`bilinearRgb gives tfjs's resizeBilinear (${alignCorners ? 'align corners' : 'half-pixel centres'}), down and up`, () => {
      const img = testImage(83, 47, 7);
      for (const [w, h] of [[33, 17], [41, 25], [1, 1], [160, 97]]) {
        const want = tf.tidy(() => tf.image.resizeBilinear(tf.cast(imageTensor(img), 'float32') as tf.Tensor4D, [h, w], alignCorners, !alignCorners).dataSync());
        const got = bilinearRgb(img, w, h, alignCorners);
        // 0..255 values. tfjs computes the sample positions in float32 (a relative error near 1e-7 of
        // a position up to 160, times a step of up to 255 between neighbours), bilinearRgb in float64.
        assert.ok(maxAbsDiff(got, want) < 1e-2, `${w}x${h}: max abs difference ${maxAbsDiff(got, want)}`);
      }
    });
  }

  it('a run at the image\'s own size takes the image as it is (no resize)', () => {
    const img = testImage(20, 10);
    const t = runImageTensor(img, { scale: 1, width: 20, height: 10, padBottom: 0, padRight: 0 }, true);
    try {
      assert.equal(t.dtype, 'int32');
      assert.deepEqual(Array.from(t.dataSync()), Array.from(img.data));
    } finally {
      t.dispose();
    }
  });

  for (const alignCorners of [true, false]) {
    it(`predictPlan gives the maps of the full-size path, every scale and flip (${alignCorners ? 'align corners' : 'half-pixel centres'}), and leaves no tensor`, async () => {
      const model = new DeepLab({ variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classes: 5, seed: 3 });
      try {
        // The wrapper's resizes follow the net's mode (torchvision's layout takes half-pixel centres).
        const net = { ...deeplabNet(model, 'imagenet'), alignCorners };
        const img = testImage(150, 97, 5);
        for (const opts of [{ resize: 'valid' as const, size: 65, scales: [0.5, 1], flip: true }, { resize: 'pad' as const, size: 81, scales: [0.75], flip: false }]) {
          const plan = planInference(img.width, img.height, net.planStride, opts);
          const want = await fullSizePath(net, img, plan);
          const before = tf.memory().numTensors;
          const got = await predictPlan(net, img, plan);
          assert.equal(tf.memory().numTensors, before, 'no tensor left');
          assert.equal(got.length, want.length);
          for (let i = 0; i < got.length; i++) {
            assert.deepEqual([got[i].width, got[i].height, got[i].classes], [want[i].width, want[i].height, want[i].classes]);
            let lo = Infinity;
            let hi = -Infinity;
            for (const v of want[i].data) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
            const d = maxAbsDiff(got[i].data, want[i].data);
            // Normalising before or after a bilinear resize differs by float rounding alone (and the
            // sample positions' rounding, above).
            assert.ok(d <= 1e-3 * (hi - lo), `${JSON.stringify(opts)} map ${i}: max abs difference ${d}, range ${hi - lo}`);
          }
        }
      } finally {
        model.dispose();
      }
    });
  }

  it('the engine never holds the full-size photo: tfjs\'s peak bytes stay below one int32 copy of it', async () => {
    const model = new DeepLab({ variant: 'v3plus', backbone: 'mobilenetv2', width: 0.125, classes: 5, seed: 3 });
    try {
      const net = deeplabNet(model, 'imagenet');
      const img = testImage(1200, 900, 9);
      const plan = planInference(img.width, img.height, net.planStride, { size: 65, scales: [0.5, 1], flip: true });
      // tf.profile's peak counts every live tensor, also those other tests in this process still hold
      // (cached models): what this run adds is the peak above the bytes live before it.
      const before = tf.memory().numBytes;
      const info = await tf.profile(async () => {
        await predictPlan(net, img, plan);
      });
      const added = info.peakBytes - before;
      const fullInt32 = img.width * img.height * 3 * 4;
      // The replaced path held the photo as int32 and as float32 (8.6 MB each here) at once.
      assert.ok(added < fullInt32 / 4, `tfjs peaked at ${(added / 1e6).toFixed(1)} MB above what was live before; the photo as int32 is ${(fullInt32 / 1e6).toFixed(1)} MB`);
    } finally {
      model.dispose();
    }
  });
});
