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
import { BnKernels, bnKernels } from './batch-norm-wasm';
import { heapF32, heapOffset, heapTensor } from './wasm-heap';

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
  /** The same on the host, where the statistics were computed there (no read-back needed). */
  host?: { mean: Float64Array; variance: Float64Array };
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
  const kernels = c % 4 === 0 ? bnKernels() : undefined;
  if (kernels) return batchNormOnHeap(kernels, x, gamma, beta, eps, onMoments);
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
 * batchNormTraining on tfjs-wasm with our SIMD kernels (batch-norm-wasm): the same formulas, the
 * per-channel arithmetic in JavaScript (float64) on values read straight off the heap, the
 * statistics two-pass (mean, then the centred moments) as the composed form.
 */
function batchNormOnHeap(
  k: BnKernels, x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number, onMoments?: (m: BatchMoments) => void,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const p = n * h * w;
  const rows = n * h;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x4, g, b, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const y = heapTensor<tf.Rank.R4>(x4.shape);
    const scratch = heapTensor<tf.Rank.R1>([8 * c]);
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    const rstd = new Float64Array(c);
    try {
      const so = heapOffset(scratch);
      const sv = heapF32(so, 8 * c);
      sv.fill(0, 0, c);
      k.moments(heapOffset(x4), so, rows, w, c);
      for (let i = 0; i < c; i++) mean[i] = sv[c + i] / p;
      for (let i = 0; i < c; i++) sv[i] = mean[i];
      k.moments(heapOffset(x4), so, rows, w, c);
      const gv = heapF32(heapOffset(g), c);
      const bv = heapF32(heapOffset(b), c);
      for (let i = 0; i < c; i++) {
        // The centred sum corrects for the float32 rounding of the mean.
        const d = sv[c + i] / p;
        mean[i] = sv[i] + d;
        variance[i] = Math.max(0, sv[2 * c + i] / p - d * d);
        rstd[i] = 1 / Math.sqrt(variance[i] + eps);
        const a = gv[i] * rstd[i];
        sv[5 * c + i] = a;
        sv[6 * c + i] = bv[i] - mean[i] * a;
      }
      k.affine(heapOffset(x4), so, heapOffset(y), p, c);
    } finally {
      scratch.dispose();
    }
    save([x4, g]);
    onMoments?.({ mean: tf.keep(tf.tensor1d(Float32Array.from(mean))), variance: tf.keep(tf.tensor1d(Float32Array.from(variance))), host: { mean, variance } });
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs] = saved as [tf.Tensor4D, tf.Tensor1D];
        const dx = heapTensor<tf.Rank.R4>(xs.shape);
        const s2 = heapTensor<tf.Rank.R1>([8 * c]);
        const dGamma = new Float32Array(c);
        const dBeta = new Float32Array(c);
        try {
          const so = heapOffset(s2);
          const sv = heapF32(so, 8 * c);
          for (let i = 0; i < c; i++) sv[i] = mean[i];
          k.dstats(heapOffset(dy), heapOffset(xs), so, rows, w, c);
          const gv = heapF32(heapOffset(gs), c);
          // dBeta = sum dy, dGamma = rstd * sum dy * (x - mean); dx = a*dy + kx*x + k0 (see batchNormTraining).
          for (let i = 0; i < c; i++) {
            const db = sv[c + i];
            const dg = rstd[i] * (sv[2 * c + i] - (mean[i] - sv[i]) * db);
            dBeta[i] = db;
            dGamma[i] = dg;
            const ga = gv[i] * rstd[i];
            const kx = (-ga * rstd[i] * dg) / p;
            sv[5 * c + i] = ga;
            sv[6 * c + i] = kx;
            sv[7 * c + i] = (-ga * db) / p - kx * mean[i];
          }
          k.affine2(heapOffset(dy), heapOffset(xs), so, heapOffset(dx), p, c);
        } finally {
          s2.dispose();
        }
        return [dx, tf.tensor1d(dGamma), tf.tensor1d(dBeta)];
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
