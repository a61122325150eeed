/**
 * Validation during training: whole images (no crop), padded bottom/right with the mean colour
 * to a size the network tiles exactly (a multiple of the output stride plus one, as DeepLab
 * evaluates), logits upsampled to that size, the image region kept, argmax, and the dataset's
 * confusion matrix from lib/metrics.
 */
import * as tf from '@tensorflow/tfjs';
import { LabelMap, RawImage, ScoreMap } from '../contract';
import { ConfusionMatrix, MeanIoURule, MetricsReport } from '../metrics/confusion';
import { DeepLab } from '../models/deeplab';
import { normalize, padValueFor, Preprocessing } from '../models/preprocess';
import { SampleSource } from './data';

/** Whether a model upsamples with corner alignment (DeepLab) or half-pixel centres (torchvision). */
export function alignsCorners(model: DeepLab): boolean {
  return model.spec.layout !== 'torchvision';
}

function paddedSize(size: number, stride: number): number {
  return Math.ceil((size - 1) / stride) * stride + 1;
}

/** Logits at the image's size, [1, H, W, C] (the caller disposes). */
export function logitsAtImageSize(model: DeepLab, pre: Preprocessing, image: RawImage): tf.Tensor4D {
  const { width: W, height: H } = image;
  const stride = model.spec.outputStride;
  const PH = paddedSize(H, stride);
  const PW = paddedSize(W, stride);
  const pad = padValueFor(pre);
  return tf.tidy(() => {
    let x: tf.Tensor4D = tf.tensor4d(image.data, [1, H, W, 3], 'int32').toFloat();
    if (PH !== H || PW !== W) {
      // Pad each channel with its mean so padding normalises to zero.
      const chans = tf.split(x, 3, 3).map((c, i) => tf.pad(c, [[0, 0], [0, PH - H], [0, PW - W], [0, 0]], pad[i]));
      x = tf.concat(chans, 3) as tf.Tensor4D;
    }
    const logits = model.forward(normalize(x, pre)).logits;
    const align = alignsCorners(model);
    const up = tf.image.resizeBilinear(logits, [PH, PW], align, !align);
    return PH === H && PW === W ? up : tf.slice(up, [0, 0, 0, 0], [1, H, W, -1]);
  });
}

export function predictLabels(model: DeepLab, pre: Preprocessing, image: RawImage): LabelMap {
  const ids = tf.tidy(() => tf.argMax(logitsAtImageSize(model, pre, image), -1));
  const data = Uint8Array.from(ids.dataSync());
  ids.dispose();
  return { width: image.width, height: image.height, data, ignoreIndex: 255 };
}

/** Class probabilities at the image's size as a ScoreMap (input of the dense CRF). */
export function predictProbs(model: DeepLab, pre: Preprocessing, image: RawImage): ScoreMap {
  const p = tf.tidy(() => tf.softmax(logitsAtImageSize(model, pre, image)));
  const data = p.dataSync() as Float32Array;
  const classes = p.shape[3];
  p.dispose();
  return { width: image.width, height: image.height, classes, data: Float32Array.from(data), kind: 'probs', stride: 1 };
}

export interface EvalOptions {
  /** Images to evaluate (0: all). */
  limit?: number;
  rule?: MeanIoURule;
  classNames?: string[];
  /** Called after each image (progress, cooperative yielding). */
  onImage?: (done: number, total: number) => void | Promise<void>;
}

export async function evaluate(model: DeepLab, pre: Preprocessing, source: SampleSource, o: EvalOptions = {}): Promise<MetricsReport> {
  const total = o.limit && o.limit > 0 ? Math.min(o.limit, source.count) : source.count;
  const cm = new ConfusionMatrix(model.spec.classes);
  for (let i = 0; i < total; i++) {
    const s = await source.get(i);
    cm.add(predictLabels(model, pre, s.image), s.label);
    await o.onImage?.(i + 1, total);
  }
  return cm.report(o.classNames ?? [], o.rule ?? 'voc');
}
