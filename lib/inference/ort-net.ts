/**
 * A network run by ONNX Runtime behind the forward wrapper's SegNet. Preprocessing, resizing,
 * mirroring and padding stay in tfjs (cheap next to the network); the padded batch goes to the
 * session as an ort.Tensor and the logits come back as a tf tensor [n, h, w, C].
 *
 * It serves this package's exports (NHWC float input, already normalised; logits at the model's
 * stride) and foreign files prepared by weights/onnx-file (NCHW or NHWC, float or integer input,
 * logits or probabilities, a fixed batch of one or a fixed image size).
 */
import * as tf from '@tensorflow/tfjs';
import { loadOrt, OrtProvider, OrtSession } from '../engine/onnxruntime';
import type { OnnxIo } from '../weights/onnx-file';
import type { SegNet } from './predict';

export interface OrtNetGeometry {
  normalize(rgb: tf.Tensor4D): tf.Tensor4D;
  padValue: number;
  logitStride: number;
  planStride: number;
  alignCorners: boolean;
}

/** Probabilities below this are taken as this before the log (a zero probability has no logit). */
const MIN_PROB = 1e-30;

export class OrtSegNet implements SegNet {
  readonly asynchronous = true;
  readonly padValue: number;
  readonly logitStride: number;
  readonly planStride: number;
  readonly alignCorners: boolean;
  private readonly normalizeFn: (rgb: tf.Tensor4D) => tf.Tensor4D;

  constructor(readonly session: OrtSession, readonly io: OnnxIo, readonly provider: OrtProvider, g: OrtNetGeometry) {
    this.normalizeFn = g.normalize;
    this.padValue = g.padValue;
    this.logitStride = g.logitStride;
    this.planStride = g.planStride;
    this.alignCorners = g.alignCorners;
  }

  normalize(rgb: tf.Tensor4D): tf.Tensor4D {
    return this.normalizeFn(rgb);
  }

  async forward(x: tf.Tensor4D): Promise<tf.Tensor4D> {
    const [n, H, W] = x.shape;
    const fh = this.io.height ?? H;
    const fw = this.io.width ?? W;
    if (H > fh || W > fw) {
      throw new Error(`this ONNX model takes images of ${fw}x${fh} pixels at most (its input size is fixed): the run is ${W}x${H}; lower deeplab-infer's size or scales`);
    }
    // A fixed input size: the run is padded up to it, and the cells past the run are cropped below.
    const feed = H < fh || W < fw ? tf.tidy(() => tf.pad(x, [[0, 0], [0, fh - H], [0, fw - W], [0, 0]], this.padValue)) : x;
    try {
      const perImage = this.io.batch === 1 && n > 1;
      const parts: tf.Tensor4D[] = [];
      try {
        for (let b = 0; b < (perImage ? n : 1); b++) {
          const one = perImage ? tf.slice(feed, [b, 0, 0, 0], [1, fh, fw, 3]) : feed;
          try {
            parts.push(await this.run(one));
          } finally {
            if (one !== feed) one.dispose();
          }
        }
        const logits: tf.Tensor4D = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
        if (logits !== parts[0]) for (const p of parts) p.dispose();
        parts.length = 0;
        if (fh === H && fw === W) return logits;
        // The cells covering the run: on pixels j * stride (corners aligned), or over stride-wide pixel spans (half-pixel centres).
        const cells = (n: number): number => (this.alignCorners ? Math.round((n - 1) / this.logitStride) + 1 : Math.ceil(n / this.logitStride));
        const h = Math.min(logits.shape[1], cells(H));
        const w = Math.min(logits.shape[2], cells(W));
        const cropped = tf.slice(logits, [0, 0, 0, 0], [logits.shape[0], h, w, logits.shape[3]]);
        logits.dispose();
        return cropped;
      } finally {
        for (const p of parts) p.dispose();
      }
    } finally {
      if (feed !== x) feed.dispose();
    }
  }

  /** One session run as it is (no crop of a fixed-size input): NHWC float batch in, logits NHWC out. */
  async run(x: tf.Tensor4D): Promise<tf.Tensor4D> {
    const ort = loadOrt();
    const io = this.io;
    const chw = io.layout === 'nchw';
    const laid = chw ? tf.transpose(x, [0, 3, 1, 2]) : x;
    const values = laid.dataSync() as Float32Array;
    const dims = laid.shape.slice();
    if (laid !== x) laid.dispose();
    const input = new ort.Tensor(io.inputType, toInputType(values, io.inputType), dims);
    const out = await this.session.run({ [io.input]: input }, [io.output]);
    const t = out[io.output];
    try {
      if (t.type !== 'float32') throw new Error(`the model's output "${io.output}" is ${t.type}, not float32 logits or probabilities (labels cannot feed msc-fusion, upsample or dense-crf: name the logits in the config)`);
      if (t.dims.length !== 4) throw new Error(`the model's output "${io.output}" has shape [${t.dims.join(', ')}], not [n, C, h, w] or [n, h, w, C]`);
      const [a, b, c, d] = t.dims;
      const data = t.data as Float32Array;
      return tf.tidy(() => {
        let y: tf.Tensor4D = tf.tensor4d(data, [a, b, c, d]);
        if (chw) y = tf.transpose(y, [0, 2, 3, 1]);
        if (io.outputKind === 'probs') y = tf.log(tf.maximum(y, MIN_PROB)) as tf.Tensor4D;
        return y;
      });
    } finally {
      input.dispose();
      t.dispose();
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

function toInputType(values: Float32Array, type: OnnxIo['inputType']): Float32Array | Uint8Array | Int32Array | BigInt64Array {
  if (type === 'float32') return values;
  if (type === 'uint8') return Uint8Array.from(values, (v) => Math.min(255, Math.max(0, Math.round(v))));
  if (type === 'int32') return Int32Array.from(values, (v) => Math.round(v));
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(Math.round(values[i]));
  return out;
}
