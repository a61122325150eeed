/**
 * Training-mode batch normalisation (batch statistics) as one op with its own gradient.
 *
 * Composed from tf.moments and tf.batchNorm, tfjs's gradient of BN runs ~25 kernels per
 * layer, among them a Tile of the per-channel factor to the full map (generic and slow on
 * wasm), broadcasting multiplies (~10x slower than same-shape ones on wasm) and reductions
 * over the outer axes (Mean and Sum transpose the whole map first on wasm). Measured on
 * v3+ MobileNetV2 x0.25 at crop 129, batch 8: BN's backward was about half of a step.
 *
 * Here, with P = N*H*W and xhat = (x - mean) * rstd:
 *   forward   mean and variance by global average pooling (XNNPACK), y as one affine pass
 *   backward  dbeta = sum dy, dgamma = sum dy * xhat (poolings again), and
 *             dx = gamma * rstd * (dy - (dbeta + xhat * dgamma) / P), as two affine passes of dy and x
 * every per-channel affine map running as a 1x1 depthwise convolution with a bias (XNNPACK),
 * never as a broadcasting binary op (nor as FusedBatchNorm, a slower scalar loop on wasm).
 * The forward keeps x and the statistics only (no normalised copy).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Per-channel scale and offset, x * scale + offset, as a 1x1 depthwise convolution with a bias:
 * one XNNPACK pass on wasm, ~1.7x faster there than FusedBatchNorm (a scalar loop), measured.
 */
function affine(x: tf.Tensor4D, scale: tf.Tensor1D, offset?: tf.Tensor1D): tf.Tensor4D {
  const c = x.shape[3];
  return tf.fused.depthwiseConv2d({ x, filter: tf.reshape(scale, [1, 1, c, 1]) as tf.Tensor4D, strides: 1, pad: 'valid', bias: offset });
}

/**
 * Sums over the pixels of every channel, times `factor`: a global average pooling per image
 * (XNNPACK's multipass pooling, one read of x), then the mean over the batch. A [1, P] x [P, C]
 * product does the same but repacks x as a weight matrix on every call (~2x slower, measured).
 */
function channelSums(x: tf.Tensor4D, factor = 1): tf.Tensor1D {
  const [n, h, w, c] = x.shape;
  const perImage = tf.reshape(tf.avgPool(x, [h, w], 1, 'valid'), [n, c]);
  return tf.mul(tf.sum(perImage, 0), factor * h * w) as tf.Tensor1D;
}

export interface BatchMoments {
  mean: tf.Tensor1D;
  /** Biased (divided by P), as tf.moments and the BN of the forward pass. */
  variance: tf.Tensor1D;
}

/**
 * y = (x - mean) / sqrt(variance + eps) * gamma + beta over the batch statistics of x (NHWC),
 * differentiable in x, gamma and beta. `onMoments` receives the batch statistics (they belong
 * to the caller, who must dispose them).
 */
export function batchNormTraining(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number, onMoments?: (m: BatchMoments) => void,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const p = n * h * w;
  if (p === 0) throw new Error('batch normalisation of an empty batch');
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x4, g, b, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const mean = channelSums(x4, 1 / p);
    const centred = affine(x4, tf.ones([c]), tf.neg(mean) as tf.Tensor1D);
    const variance = channelSums(tf.square(centred) as tf.Tensor4D, 1 / p);
    const rstd = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor1D;
    const y = affine(centred, tf.mul(g, rstd) as tf.Tensor1D, b);
    save([x4, mean, rstd, g]);
    // After save: the callback owns (and disposes) these.
    onMoments?.({ mean: tf.keep(mean), variance: tf.keep(variance) });
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, m, r, gs] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const dy4 = dy as tf.Tensor4D;
        // With xhat = (x - mean) * rstd: dBeta = sum dy, dGamma = sum dy * xhat = rstd * (sum dy * x - mean * dBeta).
        const dBeta = channelSums(dy4);
        const dGamma = tf.mul(r, tf.sub(channelSums(tf.mul(dy4, xs) as tf.Tensor4D), tf.mul(m, dBeta))) as tf.Tensor1D;
        // dx = a * (dy - (dBeta + xhat * dGamma) / P) with a = gamma * rstd
        //    = a * dy + kx * x + k0,  kx = -a * rstd * dGamma / P,  k0 = -a * dBeta / P - kx * mean.
        const ga = tf.mul(gs, r) as tf.Tensor1D;
        const kx = tf.mul(tf.mul(ga, r), tf.div(dGamma, -p)) as tf.Tensor1D;
        const k0 = tf.sub(tf.mul(ga, tf.div(dBeta, -p)), tf.mul(kx, m)) as tf.Tensor1D;
        const dx = tf.add(affine(dy4, ga, k0), affine(xs, kx)) as tf.Tensor4D;
        return [dx, dGamma, dBeta];
      },
    };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/**
 * Switches for the fused training ops, so tests and bench/train-profile can run the composed
 * tfjs formulation they replace in the same process (gradients before/after, A/B timing).
 */
export const trainingOps = {
  fusedBatchNorm: true,
  /** The loss's softmax cross entropy and its gradient in one pass on the host (wasm, cpu). */
  fusedSoftmaxCrossEntropy: true,
};
