/**
 * Convolutions as the model zoo calls them. One place decides how a convolution runs,
 * so atrous (dilated) convolutions can be trained: tfjs 4.22's conv2d and depthwiseConv2d
 * gradients throw for dilation > 1 on every backend (see DESIGN traps).
 *
 * Inference (training false) runs the native dilated kernel. Training runs an atrous
 * convolution the way TensorFlow's atrous_conv2d builds it: space-to-batch splits the
 * padded input into rate x rate phases stacked on the batch axis, a plain (dilation 1)
 * valid convolution runs on them, batch-to-space interleaves the results. All steps have
 * working gradients; the result equals the native dilated convolution.
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

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`convolution ${name} must be a positive integer, got ${v}`);
}

/** Validates the options; returns the dilation that matters (1 for a 1x1 kernel, where it changes nothing). */
function effectiveDilation(op: string, filter: tf.Tensor4D, o: ConvOptions): number {
  positiveInt('stride', o.stride);
  positiveInt('dilation', o.dilation);
  const p = o.pad;
  if (!Array.isArray(p) || p.length !== 2 || p.some((a) => !Array.isArray(a) || a.length !== 2 || a.some((v) => !Number.isInteger(v) || v < 0))) {
    throw new Error(`${op}: pad must be [[top, bottom], [left, right]] non-negative integers, got ${JSON.stringify(p)}`);
  }
  const [fh, fw] = filter.shape;
  const dilation = fh === 1 && fw === 1 ? 1 : o.dilation;
  if (dilation > 1 && o.stride > 1) {
    throw new Error(`${op}: stride ${o.stride} with dilation ${o.dilation} is not supported (DeepLab uses atrous convolution at stride 1 only)`);
  }
  return dilation;
}

/**
 * spaceToBatchND(x, [r, r], pads) with transposes of rank 3 and 4 only: wasm's Transpose is
 * ~15x slower at rank 6, which tf.spaceToBatchND uses. Batch order (py*r + px)*n + b, as TF.
 * Built from pad / reshape / transpose, all with working gradients.
 */
function spaceToBatch(x: tf.Tensor4D, r: number, pads: Padding4): tf.Tensor4D {
  const padded = tf.pad(x, [[0, 0], pads[0], pads[1], [0, 0]]);
  const [n, hp, wp, c] = padded.shape;
  const hb = hp / r;
  const wb = wp / r;
  // [n*hb, py, wp*c] -> [py, n*hb, wp*c], i.e. [py, n, hb, wb, px, c]
  const rows = tf.transpose(tf.reshape(padded, [n * hb, r, wp * c]), [1, 0, 2]);
  // [py, n*hb*wb, px, c] -> [py, px, n*hb*wb, c]
  const cols = tf.transpose(tf.reshape(rows, [r, n * hb * wb, r, c]), [0, 2, 1, 3]);
  return tf.reshape(cols, [r * r * n, hb, wb, c]);
}

/** The inverse: batchToSpaceND(y, [r, r], crops) with rank-3/4 transposes. */
function batchToSpace(y: tf.Tensor4D, r: number, crops: Padding4): tf.Tensor4D {
  const [rrn, hb, wb, c] = y.shape;
  const n = rrn / (r * r);
  // [py, px, n*hb*wb, c] -> [py, n*hb*wb, px, c], i.e. [py, n, hb, wb*px*c]
  const cols = tf.transpose(tf.reshape(y, [r, r, n * hb * wb, c]), [0, 2, 1, 3]);
  // [py, n*hb, wb*r*c] -> [n*hb, py, wb*r*c]
  const rows = tf.transpose(tf.reshape(cols, [r, n * hb, wb * r * c]), [1, 0, 2]);
  const full = tf.reshape(rows, [n, hb * r, wb * r, c]);
  const h = hb * r - crops[0][0] - crops[0][1];
  const w = wb * r - crops[1][0] - crops[1][1];
  return tf.slice(full, [0, crops[0][0], crops[1][0], 0], [n, h, w, c]) as tf.Tensor4D;
}

/**
 * Atrous convolution by space-to-batch: with xpad the padded input, output row y*rate + p
 * only reads xpad rows ≡ p (mod rate), so each phase is a dense convolution. The padded
 * extent is rounded up to a multiple of the rate and the surplus cropped off again.
 */
function spaceToBatchConv(
  op: string,
  x: tf.Tensor4D,
  kernel: [number, number],
  rate: number,
  pad: Padding4,
  conv: (phases: tf.Tensor4D) => tf.Tensor4D,
): tf.Tensor4D {
  const [, h, w] = x.shape;
  const hp = h + pad[0][0] + pad[0][1];
  const wp = w + pad[1][0] + pad[1][1];
  if (hp - (kernel[0] - 1) * rate < 1 || wp - (kernel[1] - 1) * rate < 1) {
    throw new Error(`${op}: a ${kernel[0]}x${kernel[1]} kernel at dilation ${rate} does not fit the padded ${hp}x${wp} input`);
  }
  const extraH = (rate - (hp % rate)) % rate;
  const extraW = (rate - (wp % rate)) % rate;
  return tf.tidy(() => {
    const phases = spaceToBatch(x, rate, [[pad[0][0], pad[0][1] + extraH], [pad[1][0], pad[1][1] + extraW]]);
    return batchToSpace(conv(phases), rate, [[0, extraH], [0, extraW]]);
  });
}

/**
 * A dilated kernel whose off-centre taps all land in the zero padding (a rate at least the map's
 * height and width, as ASPP's rates 12-36 on the small maps of training crops) computes exactly its
 * centre tap: a 1x1 convolution. Training takes that instead of a space-to-batch over a padded
 * extent of several times the rate (the off-centre weights get their true gradient, zero).
 */
function centreTapOnly(x: tf.Tensor4D, filter: tf.Tensor4D, dilation: number, o: ConvOptions): [number, number] | undefined {
  const [fh, fw] = filter.shape;
  if (dilation === 1 || o.stride !== 1 || fh % 2 === 0 || fw % 2 === 0) return undefined;
  const [ph, pw] = [((fh - 1) / 2) * dilation, ((fw - 1) / 2) * dilation];
  const symmetric = o.pad[0][0] === ph && o.pad[0][1] === ph && o.pad[1][0] === pw && o.pad[1][1] === pw;
  return symmetric && dilation >= x.shape[1] && dilation >= x.shape[2] ? [(fh - 1) / 2, (fw - 1) / 2] : undefined;
}

/**
 * Rows [start, start + length) of axis 1 and columns of axis 2, zero outside x (a negative start
 * or a window past the end reads the padding); null when the window misses x entirely.
 */
function zeroPaddedWindow(x: tf.Tensor4D, top: number, left: number, height: number, width: number): tf.Tensor4D | null {
  const [n, h, w, c] = x.shape;
  const y0 = Math.max(0, top);
  const y1 = Math.min(h, top + height);
  const x0 = Math.max(0, left);
  const x1 = Math.min(w, left + width);
  if (y1 <= y0 || x1 <= x0) return null;
  const inside = y0 === 0 && x0 === 0 && y1 === h && x1 === w ? x : tf.slice(x, [0, y0, x0, 0], [n, y1 - y0, x1 - x0, c]);
  const pads: [number, number][] = [[0, 0], [y0 - top, top + height - y1], [x0 - left, left + width - x1], [0, 0]];
  return pads.every(([a, b]) => a === 0 && b === 0) ? inside : tf.pad(inside, pads);
}

/**
 * Whether space-to-batch would mostly convolve padding: its phases (padded to whole multiples of
 * the rate) hold at least twice the cells of the output's phases. ASPP at rate 6 on a 9x9 map:
 * 4x4 phase blocks for 2x2 outputs, and the input gradient runs over all 16 (measured: 4x the
 * forward's time at width 1).
 */
function spaceToBatchWasteful(x: tf.Tensor4D, filter: tf.Tensor4D, rate: number, pad: Padding4): boolean {
  const [, h, w] = x.shape;
  const [kh, kw] = filter.shape;
  const hp = h + pad[0][0] + pad[0][1];
  const wp = w + pad[1][0] + pad[1][1];
  const ho = hp - (kh - 1) * rate;
  const wo = wp - (kw - 1) * rate;
  return Math.ceil(hp / rate) * Math.ceil(wp / rate) >= 2 * Math.ceil(ho / rate) * Math.ceil(wo / rate);
}

/**
 * A dilated convolution as one 1x1 convolution of the taps' windows side by side in the channels
 * (im2col), taps whose window lies wholly in the padding left out: the work of the output cells
 * only, and gradients from tfjs's own slice / pad / concat / 1x1-conv ones.
 */
function im2colConv(x: tf.Tensor4D, filter: tf.Tensor4D, rate: number, pad: Padding4): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const [kh, kw] = filter.shape;
    const ho = h + pad[0][0] + pad[0][1] - (kh - 1) * rate;
    const wo = w + pad[1][0] + pad[1][1] - (kw - 1) * rate;
    const windows: tf.Tensor4D[] = [];
    const taps: tf.Tensor4D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const win = zeroPaddedWindow(x, i * rate - pad[0][0], j * rate - pad[1][0], ho, wo);
        if (!win) continue;
        windows.push(win);
        taps.push(tf.slice(filter, [i, j, 0, 0], [1, 1, -1, -1]));
      }
    }
    if (windows.length === 0) return tf.zeros([x.shape[0], ho, wo, filter.shape[3]]);
    const cols = windows.length === 1 ? windows[0] : tf.concat(windows, 3) as tf.Tensor4D;
    const f = taps.length === 1 ? taps[0] : tf.concat(taps, 2) as tf.Tensor4D;
    return tf.conv2d(cols, f, 1, 'valid');
  });
}

export function conv2d(x: tf.Tensor4D, filter: tf.Tensor4D, o: ConvOptions): tf.Tensor4D {
  const dilation = effectiveDilation('conv2d', filter, o);
  if (dilation === 1 || !o.training) {
    return tf.conv2d(x, filter, o.stride, explicit(o.pad), 'NHWC', dilation);
  }
  const centre = centreTapOnly(x, filter, dilation, o);
  if (centre) return tf.tidy(() => tf.conv2d(x, tf.slice(filter, [centre[0], centre[1], 0, 0], [1, 1, -1, -1]) as tf.Tensor4D, 1, 'valid'));
  const [, h, w] = x.shape;
  const fits = h + o.pad[0][0] + o.pad[0][1] - (filter.shape[0] - 1) * dilation >= 1 && w + o.pad[1][0] + o.pad[1][1] - (filter.shape[1] - 1) * dilation >= 1;
  if (fits && spaceToBatchWasteful(x, filter, dilation, o.pad)) return im2colConv(x, filter, dilation, o.pad);
  return spaceToBatchConv('conv2d', x, [filter.shape[0], filter.shape[1]], dilation, o.pad,
    (p) => tf.conv2d(p, filter, 1, 'valid'));
}

export function depthwiseConv2d(x: tf.Tensor4D, filter: tf.Tensor4D, o: ConvOptions): tf.Tensor4D {
  const dilation = effectiveDilation('depthwiseConv2d', filter, o);
  if (dilation === 1 || !o.training) {
    return tf.depthwiseConv2d(x, filter, o.stride, explicit(o.pad), 'NHWC', dilation);
  }
  const centre = centreTapOnly(x, filter, dilation, o);
  if (centre) return tf.tidy(() => tf.depthwiseConv2d(x, tf.slice(filter, [centre[0], centre[1], 0, 0], [1, 1, -1, -1]) as tf.Tensor4D, 1, 'valid'));
  return spaceToBatchConv('depthwiseConv2d', x, [filter.shape[0], filter.shape[1]], dilation, o.pad,
    (p) => tf.depthwiseConv2d(p, filter, 1, 'valid'));
}
