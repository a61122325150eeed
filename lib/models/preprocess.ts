/** Input normalisation as each family of weights was trained with. */
import * as tf from '@tensorflow/tfjs';

export type Preprocessing = 'caffe-bgr' | 'imagenet' | 'tanh';
export const PREPROCESSINGS: Preprocessing[] = ['caffe-bgr', 'imagenet', 'tanh'];

/** Per-channel mean (RGB order) in 0..255: the value that normalises to zero (used for padding). */
export const CAFFE_MEAN_RGB = [122.675, 116.669, 104.008];
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/** RGB 0..255 NHWC -> the network's input space. */
export function normalize(rgb: tf.Tensor4D, mode: Preprocessing): tf.Tensor4D {
  return tf.tidy(() => {
    const x = tf.cast(rgb, 'float32');
    if (mode === 'caffe-bgr') return tf.reverse(tf.sub(x, CAFFE_MEAN_RGB), 3) as tf.Tensor4D;
    if (mode === 'imagenet') return tf.div(tf.sub(tf.div(x, 255), IMAGENET_MEAN), IMAGENET_STD) as tf.Tensor4D;
    if (mode === 'tanh') return tf.sub(tf.div(x, 127.5), 1) as tf.Tensor4D;
    throw new Error(`unknown preprocessing "${mode}": expected ${PREPROCESSINGS.join(', ')}`);
  });
}

/** RGB (0..255) that each preprocessing maps to zero: the padding colour of training crops. */
export function padValueFor(pre: Preprocessing): [number, number, number] {
  if (pre === 'caffe-bgr') return [CAFFE_MEAN_RGB[0], CAFFE_MEAN_RGB[1], CAFFE_MEAN_RGB[2]];
  if (pre === 'imagenet') return [IMAGENET_MEAN[0] * 255, IMAGENET_MEAN[1] * 255, IMAGENET_MEAN[2] * 255];
  return [127.5, 127.5, 127.5];
}

/** The default preprocessing of each variant's published weights. */
export function defaultPreprocessing(variant: string, layout?: string): Preprocessing {
  if (variant === 'v1' || variant === 'v2') return 'caffe-bgr';
  return layout === 'torchvision' || layout === 'jfzhang95' ? 'imagenet' : 'tanh';
}
