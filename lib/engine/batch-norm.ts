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
 *   forward   mean and variance as [1, P] x [P, C] products (XNNPACK GEMV), y by FusedBatchNorm
 *   backward  dbeta = sum dy, dgamma = sum dy * xhat (both GEMVs), and
 *             dx = gamma * rstd * (dy - (dbeta + xhat * dgamma) / P)
 * every per-channel affine map running as a FusedBatchNorm with zero mean, unit variance and
 * epsilon 0 (exact: x * scale + offset), never as a broadcasting binary op.
 * The forward keeps x and the statistics only; xhat is recomputed in the backward pass.
 */
import * as tf from '@tensorflow/tfjs';

/** Per-channel scale and offset, x * scale + offset, as one FusedBatchNorm pass. */
function affine(x: tf.Tensor4D, scale: tf.Tensor1D | undefined, offset: tf.Tensor1D | undefined): tf.Tensor4D {
  const c = x.shape[3];
  return tf.batchNorm(x, tf.zeros([c]), tf.ones([c]), offset, scale, 0) as tf.Tensor4D;
}

/** Sums over the pixels of every channel: [1, P] x [P, C], scaled by `factor`. */
function channelSums(x: tf.Tensor4D, factor = 1): tf.Tensor1D {
  const [n, h, w, c] = x.shape;
  const p = n * h * w;
  return tf.reshape(tf.matMul(tf.fill([1, p], factor), tf.reshape(x, [p, c])), [c]);
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
    const centred = affine(x4, undefined, tf.neg(mean));
    const variance = channelSums(tf.square(centred) as tf.Tensor4D, 1 / p);
    const y = tf.batchNorm(x4, mean, variance, b, g, eps) as tf.Tensor4D;
    onMoments?.({ mean: tf.keep(mean), variance: tf.keep(variance) });
    save([x4, mean, variance, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, m, v, gs] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
        const dy4 = dy as tf.Tensor4D;
        const xhat = tf.batchNorm(xs, m, v, undefined, undefined, eps) as tf.Tensor4D;
        const dBeta = channelSums(dy4);
        const dGamma = channelSums(tf.mul(dy4, xhat) as tf.Tensor4D);
        const rstd = tf.rsqrt(tf.add(v, eps));
        // dx = gamma * rstd * (dy - (dBeta + xhat * dGamma) / P)
        const inner = tf.add(dy4, affine(xhat, tf.div(dGamma, -p) as tf.Tensor1D, tf.div(dBeta, -p) as tf.Tensor1D)) as tf.Tensor4D;
        const dx = affine(inner, tf.mul(gs, rstd) as tf.Tensor1D, undefined);
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
export const trainingOps = { fusedBatchNorm: true };
