/**
 * Convolutions as the model zoo calls them. One place decides how a convolution runs,
 * so atrous (dilated) convolutions can be trained: tfjs 4.22's conv2d gradient throws for
 * dilation > 1 (see DESIGN traps).
 */
import * as tf from '@tensorflow/tfjs';

export type Padding4 = [[number, number], [number, number]];

export interface ConvOptions {
  stride: number;
  dilation: number;
  /** Explicit [[top, bottom], [left, right]] zero padding (PyTorch / Caffe semantics). */
  pad: Padding4;
  /** Training graphs need a differentiable formulation of dilation. */
  training?: boolean;
}

function explicit(pad: Padding4): tf.backend_util.ExplicitPadding {
  return [[0, 0], pad[0], pad[1], [0, 0]];
}

export function conv2d(x: tf.Tensor4D, filter: tf.Tensor4D, o: ConvOptions): tf.Tensor4D {
  return tf.conv2d(x, filter, o.stride, explicit(o.pad), 'NHWC', o.dilation);
}

export function depthwiseConv2d(x: tf.Tensor4D, filter: tf.Tensor4D, o: ConvOptions): tf.Tensor4D {
  return tf.depthwiseConv2d(x, filter, o.stride, explicit(o.pad), 'NHWC', o.dilation);
}
