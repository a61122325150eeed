import * as tf from '@tensorflow/tfjs';
import { Ctx } from '../layers';
import { OnnxGraph } from '../onnx/graph';

/** What a backbone hands to the heads. */
export interface Features {
  /** Stride-4 features for the v3+ decoder. */
  low: tf.Tensor4D;
  /** Stage-4 (ResNet layer3) features for torchvision's auxiliary head. */
  mid?: tf.Tensor4D;
  /** The deepest features, at the output stride. */
  out: tf.Tensor4D;
}

export interface Backbone {
  readonly lowChannels: number;
  readonly midChannels: number;
  readonly outChannels: number;
  apply(x: tf.Tensor4D, ctx: Ctx): Features;
  /** The inference arithmetic of `apply` as ONNX nodes (NCHW tensors named in the graph). */
  export(g: OnnxGraph, x: string): FeatureNames;
}

/** Features as tensor names of an ONNX graph. */
export interface FeatureNames {
  low: string;
  mid?: string;
  out: string;
}
