/**
 * Gradient kernels the wasm backend of tfjs 4.22 lacks (or has only in a slow form), so
 * that models train on wasm. Each is composed of kernels wasm does have and runs fast
 * (XNNPACK Conv2D / DepthwiseConv2dNative / MatMul, Transpose, Slice, Pad,
 * BatchToSpaceND); the floating-point work equals the forward convolution's.
 *
 * - Conv2DBackpropFilter: for kernels above 1x1, one convolution of the input (batch as
 *   channels) by dy as the filter (forward stride as dilation); for 1x1 stride 1, our
 *   WebAssembly SIMD kernel (pointwise-filter-grad.ts), else the channel-major input times dy,
 *   one plain MatMul (MatMul with transposeA is ~6x slower on wasm).
 * - Conv2DBackpropInput: wasm has it, but as a naive loop ~15x slower than the forward
 *   conv; replaced by a polyphase formulation: one stride-1 conv per output phase with the
 *   matching taps of the rotated filter, interleaved by rank-4 transposes (no zero insertion).
 * - DepthwiseConv2dNativeBackpropInput: our WebAssembly SIMD kernel (depthwise-filter-grad.ts),
 *   else the same polyphase scheme with depthwise convs.
 * - DepthwiseConv2dNativeBackpropFilter: our WebAssembly SIMD kernel (depthwise-filter-grad.ts);
 *   where it does not apply, a depthwise conv of the input with dy as the filter (batch folded
 *   into channels; forward stride becomes the filter dilation).
 * - UnsortedSegmentSum (the gradient of gather): a scatter-add over the data.
 *
 * Two gradient kernels are wrong in tfjs 4.22 on wasm and cpu alike (measured against
 * finite differences), and are replaced on both backends:
 * - ResizeBilinearGrad ignores halfPixelCenters (the PyTorch align_corners=False
 *   convention); the cpu one also swaps height and width in its output shape. wasm's
 *   own kernel still runs when halfPixelCenters is false.
 * - AvgPoolGrad divides by the full window where the forward pass divides by the cells
 *   inside the input (padding excluded), so 'same' / numeric padding gave wrong gradients.
 *
 * Kernels compose tf ops: the engine runs a kernel with the tape off and accepts a Tensor
 * as its output, and tf.tidy frees the intermediates.
 */
import * as tf from '@tensorflow/tfjs';
import { depthwiseFilterGradSimd, depthwiseInputGradSimd } from './depthwise-filter-grad';
import { concatLastAxisSimd, relu6GradSimd, splitLastAxisSimd } from './elementwise-wasm';
import { heapAvailable, heapF32, heapOffset, heapTensor } from './wasm-heap';
import { pointwiseFilterGradSimd } from './pointwise-filter-grad';

type Tensor = tf.Tensor;
type Tensor4D = tf.Tensor4D;
type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/** Upper bound (elements) of one im2col chunk in the filter gradient: 64 MB of float32. */
const IM2COL_CHUNK = 16 * 1024 * 1024;

const MARK = '__deeplabWasmGradKernel';

/** Kernels this module replaced, keyed "backend/kernel", kept so tests can check the originals. */
export const replacedKernels = new Map<string, tf.KernelConfig>();

function asTensor(info: tf.TensorInfo): Tensor {
  // Inputs are Tensors when ops call runKernel; wrap bare TensorInfos (the tidy releases the wrapper).
  if (info instanceof tf.Tensor) return info;
  return tf.engine().makeTensorFromTensorInfo(info);
}

function pair(v: number | [number, number] | undefined): [number, number] {
  if (v === undefined || v === null) return [1, 1];
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

function expectNHWC(kernel: string, dataFormat: string | undefined): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm supports dataFormat NHWC only, got ${dataFormat}`);
  }
}

/**
 * `length` elements from `start` along each given axis, zero outside the tensor: `start`
 * may be negative and the window may run past the end (convolution padding).
 */
function window(t: Tensor, spans: Array<[axis: number, start: number, length: number]>): Tensor {
  const begin = t.shape.map(() => 0);
  const size = t.shape.slice();
  const pads = t.shape.map((): [number, number] => [0, 0]);
  let sliced = false;
  let padded = false;
  for (const [axis, start, length] of spans) {
    const dim = t.shape[axis];
    const before = Math.min(length, Math.max(0, -start));
    const from = Math.max(0, start);
    const take = Math.max(0, Math.min(dim - from, length - before));
    if (take === 0) {
      const shape = t.shape.slice();
      for (const [a, , l] of spans) shape[a] = l;
      return tf.zeros(shape, t.dtype);
    }
    begin[axis] = from;
    size[axis] = take;
    pads[axis] = [before, length - before - take];
    if (from !== 0 || take !== dim) sliced = true;
    if (before !== 0 || length - before - take !== 0) padded = true;
  }
  let out = sliced ? tf.slice(t, begin, size) : t;
  if (padded) out = tf.pad(out, pads);
  return out;
}

interface AxisPlan {
  /** First output position of every phase, in units of the stride. */
  q0: number;
  /** Output positions per phase. */
  count: number;
  /** BatchToSpaceND crops that turn the interleaved phases into the input extent. */
  crop: [number, number];
}

/**
 * Along one axis, input position x receives dy[y] * f[i] where x + padBefore = y*s + i*d.
 * Grouping x by phase r = (x + padBefore) mod s leaves the taps i = r, r+s, ... and a
 * stride-1 correlation per phase (s > 1 requires d = 1; with s = 1 there is one phase).
 */
function axisPlan(stride: number, padBefore: number, size: number): AxisPlan {
  const q0 = Math.floor(padBefore / stride);
  const count = Math.ceil((size + padBefore) / stride) - q0;
  const crop0 = padBefore - q0 * stride;
  return { q0, count, crop: [crop0, count * stride - crop0 - size] };
}

/**
 * dx of a (depthwise) convolution by phases. `phaseConv(win, taps, dilation)` runs the
 * stride-1 valid correlation of a dy window with the rotated taps of one phase.
 */
function backpropInputByPhases(
  dy: Tensor4D,
  filter: Tensor4D,
  info: tf.backend_util.Conv2DInfo,
  outChannels: number,
  phaseConv: (win: Tensor4D, taps: Tensor4D, dilation: [number, number]) => Tensor4D,
  rotatedTaps?: (ry: number, rx: number) => Tensor4D | undefined,
): Tensor4D {
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  if ((sh > 1 && dh > 1) || (sw > 1 && dw > 1)) {
    throw new Error(`convolution backprop: stride ${sh}x${sw} together with dilation ${dh}x${dw} is not supported`);
  }
  const [fh, fw, fc, fm] = filter.shape;
  const n = info.batchSize;
  const ph = axisPlan(sh, info.padInfo.top, info.inHeight);
  const pw = axisPlan(sw, info.padInfo.left, info.inWidth);
  const phases: Tensor4D[] = [];
  for (let ry = 0; ry < sh; ry++) {
    for (let rx = 0; rx < sw; rx++) {
      const mh = ry < fh ? Math.ceil((fh - ry) / sh) : 0;
      const mw = rx < fw ? Math.ceil((fw - rx) / sw) : 0;
      if (mh === 0 || mw === 0) {
        // A kernel smaller than the stride leaves this phase of dx untouched.
        phases.push(tf.zeros([n, ph.count, pw.count, outChannels]));
        continue;
      }
      const taps = rotatedTaps?.(ry, rx) ?? (fh === 1 && fw === 1 ? filter
        : tf.reverse(tf.stridedSlice(filter, [ry, rx, 0, 0], [fh, fw, fc, fm], [sh, sw, 1, 1]), [0, 1]) as Tensor4D);
      const win = window(dy, [
        [1, ph.q0 - (mh - 1) * dh, ph.count + (mh - 1) * dh],
        [2, pw.q0 - (mw - 1) * dw, pw.count + (mw - 1) * dw],
      ]) as Tensor4D;
      phases.push(phaseConv(win, taps, [dh, dw]));
    }
  }
  if (phases.length === 1) return phases[0];
  return interleavePhases(tf.concat(phases, 0) as Tensor4D, sh, sw, ph.crop, pw.crop);
}

/**
 * batchToSpaceND(y, [sh, sw], crops) with transposes of rank 4 at most: wasm's BatchToSpaceND
 * transposes at rank 6, a generic loop ~15x slower (it was ~10 % of a training step).
 * Batch order (ry*sw + rx)*n + b, as TensorFlow's.
 */
function interleavePhases(y: Tensor4D, sh: number, sw: number, cropH: [number, number], cropW: [number, number]): Tensor4D {
  const [b, hb, wb, c] = y.shape;
  const n = b / (sh * sw);
  // [ry, rx, n*hb*wb, c] -> [ry, n*hb*wb, rx, c], i.e. [ry, n, hb, wb*rx*c]
  const cols = tf.transpose(tf.reshape(y, [sh, sw, n * hb * wb, c]), [0, 2, 1, 3]);
  // [ry, n*hb, wb*sw*c] -> [n*hb, ry, wb*sw*c]
  const rows = tf.transpose(tf.reshape(cols, [sh, n * hb, wb * sw * c]), [1, 0, 2]);
  const full = tf.reshape(rows, [n, hb * sh, wb * sw, c]);
  const h = hb * sh - cropH[0] - cropH[1];
  const w = wb * sw - cropW[0] - cropW[1];
  if (cropH[0] === 0 && cropW[0] === 0 && h === hb * sh && w === wb * sw) return full as Tensor4D;
  return tf.slice(full, [0, cropH[0], cropW[0], 0], [n, h, w, c]) as Tensor4D;
}

// ---- Conv2DBackpropFilter -------------------------------------------------------------

/**
 * The inputs each filter tap (i, j) sees, [ci, n, ho, wo], from the channel-major padded window
 * xw [ci, n, H, W] (H, W multiples of the strides): the window itself for a 1x1 stride-1
 * convolution, else a Slice. With a stride, the window is first split once into its stride
 * phases (rank-4 reshape and transpose), so that every tap is a contiguous Slice of one phase:
 * wasm's StridedSlice is a generic loop (the 9 taps of the stem took ~10 % of a step).
 */
function tapsOf(xw: Tensor, ho: number, wo: number, sh: number, sw: number): (i: number, j: number) => Tensor {
  const [ci, n, hw, ww] = xw.shape;
  if (sh === 1 && sw === 1) {
    return (i, j) => (i === 0 && j === 0 && hw === ho && ww === wo ? xw : tf.slice(xw, [0, 0, i, j], [ci, n, ho, wo]));
  }
  const hq = hw / sh;
  const wq = ww / sw;
  // [ci*n*hq, sh, wq, sw] -> [sh, sw, ci*n*hq, wq]: phase (py, px) holds rows py, py + sh, ...
  const phases = tf.reshape(tf.transpose(tf.reshape(xw, [ci * n * hq, sh, wq, sw]), [1, 3, 0, 2]), [sh * sw, ci * n, hq, wq]);
  return (i, j) => {
    const phase = (i % sh) * sw + (j % sw);
    return tf.slice(phases, [phase, 0, Math.floor(i / sh), Math.floor(j / sw)], [1, ci * n, ho, wo]);
  };
}

function conv2dBackpropFilter(x: Tensor4D, dy: Tensor4D, attrs: tf.Conv2DBackpropFilterAttrs): Tensor4D {
  expectNHWC('Conv2DBackpropFilter', attrs.dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape, attrs.filterShape, attrs.strides, 1, attrs.pad as Pad, attrs.dimRoundingMode as Rounding, false);
  const [fh, fw, ci, co] = attrs.filterShape;
  const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const n = x.shape[0];
  const p = n * ho * wo;
  // The convolution form has the batch as its channels: XNNPACK runs it well from 8 images and
  // narrow layers; below 8 images, or from 128 input channels, the im2col product was faster
  // (measured on v3+'s decoder: batch 2 at 81x81 76->64 ~15 %, 304->256 ~30 %; batch 8 at 33x33
  // 76->64 the convolution ~20 % faster, 304->256 ~10 % slower).
  if (fh * fw > 1 && n >= 8 && ci < 128) return filterGradByConv(x, dy, info);
  if (sh === 1 && sw === 1 && info.padInfo.top === 0 && info.padInfo.left === 0 && ho === x.shape[1] && wo === x.shape[2]) {
    const simd = pointwiseFilterGradSimd(x, dy);
    if (simd) return simd;
  }
  // Channel-major input: each tap's slice reshapes straight into rows of the transposed im2col.
  const xt = tf.transpose(x, [3, 0, 1, 2]);
  // The window's extent rounded up to whole strides (the extra zeros are read by no tap).
  const xw = window(xt, [
    [2, -info.padInfo.top, Math.ceil((fh + (ho - 1) * sh) / sh) * sh],
    [3, -info.padInfo.left, Math.ceil((fw + (wo - 1) * sw) / sw) * sw],
  ]);
  const tap = tapsOf(xw, ho, wo, sh, sw);
  const dy2 = tf.reshape(dy, [p, co]);
  const taps = fh * fw;
  const perChunk = Math.max(1, Math.floor(IM2COL_CHUNK / (ci * p)));
  const parts: Tensor[] = [];
  for (let t0 = 0; t0 < taps; t0 += perChunk) {
    parts.push(tf.tidy(() => {
      const rows: Tensor[] = [];
      for (let t = t0; t < Math.min(taps, t0 + perChunk); t++) {
        const i = Math.floor(t / fw);
        const j = t % fw;
        rows.push(tf.reshape(tap(i, j), [ci, p]));
      }
      return tf.matMul(rows.length === 1 ? rows[0] : tf.concat(rows, 0), dy2);
    }));
  }
  return tf.reshape(parts.length === 1 ? parts[0] : tf.concat(parts, 0), [fh, fw, ci, co]);
}

/**
 * dW[i, j, ci, co] = sum over n, y, x of xpad[n, y*s + i, x*s + j, ci] * dy[n, y, x, co]: one
 * convolution of the input with the batch as its channels and ci as its batch ([ci, H, W, n]),
 * by dy as the filter ([ho, wo, n, co], the forward stride as its dilation). XNNPACK runs it as
 * one GEMM with K = ho*wo*n; the im2col of Slices (one copy of the input per tap) cost more
 * than the product for kernels above 1x1 (measured: 3x3 taps were ~13 % of a step).
 */
function filterGradByConv(x: Tensor4D, dy: Tensor4D, info: tf.backend_util.Conv2DInfo): Tensor4D {
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const xw = window(tf.transpose(x, [3, 1, 2, 0]), [
    [1, -info.padInfo.top, fh + (ho - 1) * sh],
    [2, -info.padInfo.left, fw + (wo - 1) * sw],
  ]) as Tensor4D;
  const g = tf.conv2d(xw, tf.transpose(dy, [1, 2, 0, 3]) as Tensor4D, 1, 'valid', 'NHWC', [sh, sw]);
  return tf.transpose(g, [1, 2, 0, 3]);
}

// ---- Conv2DBackpropInput --------------------------------------------------------------

function conv2dBackpropInput(dy: Tensor4D, filter: Tensor4D, attrs: tf.Conv2DBackpropInputAttrs): Tensor4D {
  expectNHWC('Conv2DBackpropInput', attrs.dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape, filter.shape, attrs.strides, 1, attrs.pad as Pad, attrs.dimRoundingMode as Rounding, false);
  const onHeap = heapAvailable();
  return backpropInputByPhases(dy, filter, info, info.inChannels, (win, taps, dilation) =>
    // dx correlates dy with the filter's taps rotated and its in/out channels swapped.
    tf.conv2d(win, onHeap ? taps : tf.transpose(taps, [0, 1, 3, 2]), 1, 'valid', 'NHWC', dilation),
  onHeap ? (ry, rx) => rotatedSwappedTaps(filter, ry, rx, info.strideHeight, info.strideWidth) : undefined);
}

/**
 * The taps of stride phase (ry, rx), rotated by 180 degrees, with in and out channels swapped
 * ([mh, mw, co, ci]), copied in JavaScript on tfjs-wasm's heap: wasm's Reverse is a generic
 * loop (~80 ms for a 3x3 320->256 filter, measured) and the swap a Transpose more.
 */
function rotatedSwappedTaps(filter: Tensor4D, ry: number, rx: number, sh: number, sw: number): Tensor4D {
  const [fh, fw, ci, co] = filter.shape;
  const mh = Math.ceil((fh - ry) / sh);
  const mw = Math.ceil((fw - rx) / sw);
  const out = heapTensor<tf.Rank.R4>([mh, mw, co, ci]);
  const src = heapF32(heapOffset(filter), filter.size);
  const dst = heapF32(heapOffset(out), out.size);
  for (let a = 0; a < mh; a++) {
    for (let b = 0; b < mw; b++) {
      // rotated tap (a, b) is the phase's tap (mh - 1 - a, mw - 1 - b)
      const from = (((ry + (mh - 1 - a) * sh) * fw + rx + (mw - 1 - b) * sw) * ci) * co;
      const to = ((a * mw + b) * co) * ci;
      for (let i = 0; i < ci; i++) {
        const row = from + i * co;
        for (let o = 0; o < co; o++) dst[to + o * ci + i] = src[row + o];
      }
    }
  }
  return out;
}

// ---- DepthwiseConv2dNativeBackpropInput -----------------------------------------------

function depthwiseBackpropInput(dy: Tensor4D, filter: Tensor4D, attrs: tf.DepthwiseConv2dNativeBackpropInputAttrs): Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape, filter.shape, attrs.strides, pair(attrs.dilations), attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding, true);
  const [, , c, m] = filter.shape;
  const simd = depthwiseInputGradSimd(dy, filter, info);
  if (simd) return simd;
  return backpropInputByPhases(dy, filter, info, c, (win, taps, dilation) => {
    // Each of the c*m dy channels is convolved with its own tap, then the m multipliers summed.
    const [kh, kw] = taps.shape;
    const y = tf.depthwiseConv2d(win, tf.reshape(taps, [kh, kw, c * m, 1]) as Tensor4D, 1, 'valid', 'NHWC', dilation);
    if (m === 1) return y;
    const [b, h, w] = y.shape;
    return tf.sum(tf.reshape(y, [b, h, w, c, m]), 4) as Tensor4D;
  });
}

// ---- DepthwiseConv2dNativeBackpropFilter ----------------------------------------------

function depthwiseBackpropFilter(x: Tensor4D, dy: Tensor4D, attrs: tf.DepthwiseConv2dNativeBackpropFilterAttrs): Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape, attrs.filterShape, attrs.strides, pair(attrs.dilations), attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding, true);
  const [fh, fw, c, m] = attrs.filterShape;
  const simd = depthwiseFilterGradSimd(x, dy, info, m);
  if (simd) return simd;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, outHeight: ho, outWidth: wo } = info;
  if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1)) {
    throw new Error(`DepthwiseConv2dNativeBackpropFilter: stride ${sh}x${sw} together with dilation ${dh}x${dw} is not supported`);
  }
  const [n, h, w] = x.shape;
  // dW[i,j,c,m] = sum over n,y,x of xpad[n, y*s + i*d, x*s + j*d, c] * dy[n, y, x, c*m + m']:
  // a depthwise correlation of xpad (batch folded into channels) with dy as the filter,
  // whose taps sit s apart (filter dilation s) and whose outputs sit d apart (stride d).
  const xt = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]);
  const xw = window(xt, [
    [1, -info.padInfo.top, (fh - 1) * dh + (ho - 1) * sh + 1],
    [2, -info.padInfo.left, (fw - 1) * dw + (wo - 1) * sw + 1],
  ]) as Tensor4D;
  const dyt = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [ho, wo, n * c, m]) as Tensor4D;
  const g = tf.depthwiseConv2d(xw, dyt, [dh, dw], 'valid', 'NHWC', [sh, sw]);
  const perImage = tf.reshape(g, [fh, fw, n, c * m]);
  return tf.reshape(n === 1 ? perImage : tf.sum(perImage, 2), [fh, fw, c, m]);
}

// ---- UnsortedSegmentSum ---------------------------------------------------------------

function unsortedSegmentSum(x: Tensor, segmentIds: Tensor, numSegments: number): Tensor {
  const idsShape = segmentIds.shape;
  if (idsShape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${idsShape}] must be a prefix of data shape [${x.shape}]`);
  }
  const inner = segmentIds.size === 0 ? 0 : x.size / segmentIds.size;
  const data = x.dataSync();
  const ids = segmentIds.dataSync();
  const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let k = 0; k < ids.length; k++) {
    const s = ids[k];
    // Out-of-range ids are dropped, as in TensorFlow.
    if (s < 0 || s >= numSegments) continue;
    const o = s * inner;
    const src = k * inner;
    for (let e = 0; e < inner; e++) out[o + e] += data[src + e];
  }
  return tf.tensor(out, [numSegments, ...x.shape.slice(idsShape.length)], x.dtype === 'int32' ? 'int32' : 'float32');
}

// ---- ResizeBilinearGrad ---------------------------------------------------------------

/**
 * The [outSize, inSize] interpolation matrix of one axis, read off the backend's own forward
 * resize applied to an identity image, so the gradient follows exactly the forward's
 * coordinate rules (align corners, half-pixel centres, edge clamping).
 */
function interpolationMatrix(inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): tf.Tensor2D {
  const eye = tf.reshape(tf.eye(inSize), [1, inSize, 1, inSize]) as tf.Tensor4D;
  return tf.reshape(tf.image.resizeBilinear(eye, [outSize, 1], alignCorners, halfPixelCenters), [outSize, inSize]);
}

/**
 * Bilinear resizing is separable, out = Ry * in * Rx^T per image and channel, so the
 * gradient is Ry^T * dy * Rx: two matrix products with transposes in between.
 */
function resizeBilinearGrad(images: Tensor4D, dy: Tensor4D, attrs: tf.ResizeBilinearGradAttrs): Tensor4D {
  const [n, h, w, c] = images.shape;
  const [, ho, wo] = dy.shape;
  const half = !!attrs.halfPixelCenters;
  const ryT = tf.transpose(interpolationMatrix(h, ho, attrs.alignCorners, half));
  const rxT = tf.transpose(interpolationMatrix(w, wo, attrs.alignCorners, half));
  const rows = tf.matMul(ryT, tf.reshape(tf.transpose(dy, [1, 0, 2, 3]), [ho, n * wo * c])); // [h, n*wo*c]
  const byCol = tf.reshape(tf.transpose(tf.reshape(rows, [h, n, wo, c]), [2, 0, 1, 3]), [wo, h * n * c]);
  const cols = tf.reshape(tf.matMul(rxT, byCol), [w, h, n, c]);
  return tf.transpose(cols, [2, 1, 0, 3]) as Tensor4D;
}

// ---- AvgPoolGrad ----------------------------------------------------------------------

/** Cells of each window along one axis that lie inside the input (the forward's divisor). */
function insideCounts(outSize: number, stride: number, k: number, padBefore: number, size: number): number[] {
  return Array.from({ length: outSize }, (_, o) => {
    const start = o * stride - padBefore;
    return Math.max(0, Math.min(size, start + k) - Math.max(0, start));
  });
}

/**
 * dx of an average pool: each output spreads dy / (its inside-cell count) over its window,
 * i.e. the input gradient of a depthwise convolution with an all-ones filter.
 */
function avgPoolGrad(dy: Tensor4D, x: Tensor4D, attrs: tf.AvgPoolGradAttrs): Tensor4D {
  const info = tf.backend_util.computePool2DInfo(x.shape, attrs.filterSize, attrs.strides, 1, attrs.pad as Pad);
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo } = info;
  const [, h, w, c] = x.shape;
  const { top, left } = info.padInfo;
  const rows = insideCounts(ho, sh, kh, top, h);
  const cols = insideCounts(wo, sw, kw, left, w);
  const inv = new Float32Array(ho * wo);
  for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) inv[i * wo + j] = rows[i] * cols[j] > 0 ? 1 / (rows[i] * cols[j]) : 0;
  // Explicit padding that yields exactly ho x wo windows (rounding modes can leave the last one short).
  const bottom = Math.max(0, (ho - 1) * sh + kh - h - top);
  const right = Math.max(0, (wo - 1) * sw + kw - w - left);
  const scaled = tf.mul(dy, tf.tensor4d(inv, [1, ho, wo, 1]));
  return tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: scaled, filter: tf.ones([kh, kw, c, 1]) }, {
    strides: [sh, sw], dilations: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], inputShape: x.shape,
  } as unknown as tf.NamedAttrMap) as Tensor4D;
}

// ---- registration ---------------------------------------------------------------------

type Impl = (inputs: Record<string, Tensor>, attrs: tf.NamedAttrMap) => Tensor;

function config(kernelName: string, backendName: string, impl: Impl): tf.KernelConfig {
  const kernelFunc = ((args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap }) =>
    tf.tidy(() => {
      const inputs: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(args.inputs)) if (v) inputs[k] = asTensor(v);
      return impl(inputs, args.attrs ?? {});
    })) as unknown as tf.KernelFunc;
  (kernelFunc as unknown as Record<string, boolean>)[MARK] = true;
  return { kernelName, backendName, kernelFunc };
}

const attrsOf = <T>(a: tf.NamedAttrMap): T => a as unknown as T;

/** Runs the kernel this module replaced on the active backend. */
function runReplaced(backend: string, name: string, inputs: Record<string, Tensor>, attrs: tf.NamedAttrMap): Tensor {
  const original = replacedKernels.get(`${backend}/${name}`);
  if (!original) throw new Error(`no original ${name} kernel for backend ${backend}`);
  const out = original.kernelFunc({ inputs, attrs, backend: tf.backend() }) as tf.TensorInfo;
  return tf.engine().makeTensorFromTensorInfo(out);
}

/** Runs the replaced kernel with several outputs on the active backend. */
function runReplacedMany(backend: string, name: string, inputs: Record<string, Tensor>, attrs: tf.NamedAttrMap): Tensor[] {
  const original = replacedKernels.get(`${backend}/${name}`);
  if (!original) throw new Error(`no original ${name} kernel for backend ${backend}`);
  const out = original.kernelFunc({ inputs, attrs, backend: tf.backend() }) as tf.TensorInfo[];
  return out.map((o) => tf.engine().makeTensorFromTensorInfo(o));
}

/** Gradient kernels that are wrong on wasm and cpu alike. */
function fixes(backend: string): tf.KernelConfig[] {
  return [
    config(tf.ResizeBilinearGrad, backend, (i, a) => {
      const attrs = attrsOf<tf.ResizeBilinearGradAttrs>(a);
      // wasm's own kernel is right (and ~4x faster) without half-pixel centres; cpu's has a swapped output shape.
      if (backend === 'wasm' && !attrs.halfPixelCenters && replacedKernels.has('wasm/ResizeBilinearGrad')) {
        return runReplaced(backend, tf.ResizeBilinearGrad, i, a);
      }
      return resizeBilinearGrad(i.images as Tensor4D, i.dy as Tensor4D, attrs);
    }),
    config(tf.AvgPoolGrad, backend, (i, a) =>
      avgPoolGrad(i.dy as Tensor4D, i.input as Tensor4D, attrsOf<tf.AvgPoolGradAttrs>(a))),
  ];
}

/**
 * Identity sharing its input's buffer (a reference count more), as the cpu backend's does. wasm's
 * copies the data, and the gradient tape clones every tensor a gradient needs through Identity:
 * ~1600 copies a step for v3+ MobileNetV2. Tensors are immutable (a Variable's assign swaps its
 * buffer), so sharing is safe.
 */
function sharedIdentity(): tf.KernelConfig {
  const kernelFunc = ((args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend }) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return replacedKernels.get(`wasm/${tf.Identity}`)!.kernelFunc(args as Parameters<tf.KernelFunc>[0]);
    (args.backend as unknown as { incRef(id: tf.DataId): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as tf.KernelFunc;
  (kernelFunc as unknown as Record<string, boolean>)[MARK] = true;
  return { kernelName: tf.Identity, backendName: 'wasm', kernelFunc };
}

/** Kernels registered for each backend (by registerTrainingKernels). */
export const TRAINING_KERNELS: Record<string, tf.KernelConfig[]> = {
  wasm: [
    config(tf.Conv2DBackpropFilter, 'wasm', (i, a) =>
      conv2dBackpropFilter(i.x as Tensor4D, i.dy as Tensor4D, attrsOf<tf.Conv2DBackpropFilterAttrs>(a))),
    config(tf.Conv2DBackpropInput, 'wasm', (i, a) =>
      conv2dBackpropInput(i.dy as Tensor4D, i.filter as Tensor4D, attrsOf<tf.Conv2DBackpropInputAttrs>(a))),
    config(tf.DepthwiseConv2dNativeBackpropFilter, 'wasm', (i, a) =>
      depthwiseBackpropFilter(i.x as Tensor4D, i.dy as Tensor4D, attrsOf<tf.DepthwiseConv2dNativeBackpropFilterAttrs>(a))),
    config(tf.DepthwiseConv2dNativeBackpropInput, 'wasm', (i, a) =>
      depthwiseBackpropInput(i.dy as Tensor4D, i.filter as Tensor4D, attrsOf<tf.DepthwiseConv2dNativeBackpropInputAttrs>(a))),
    config(tf.UnsortedSegmentSum, 'wasm', (i, a) =>
      unsortedSegmentSum(i.x, i.segmentIds, attrsOf<tf.UnsortedSegmentSumAttrs>(a).numSegments)),
    sharedIdentity(),
    // Last-axis copies as SIMD moves (elementwise-wasm.ts), else wasm's own kernels.
    config(tf.Concat, 'wasm', (i, a) => {
      const xs = Object.keys(i).sort((p, q) => Number(p) - Number(q)).map((k) => i[k]);
      const axis = attrsOf<tf.ConcatAttrs>(a).axis;
      return concatLastAxisSimd(xs, axis) ?? runReplaced('wasm', tf.Concat, xs as unknown as Record<string, Tensor>, a);
    }),
    config(tf.SplitV, 'wasm', (i, a) => {
      const { numOrSizeSplits, axis } = attrsOf<tf.SplitVAttrs>(a);
      const x = i.x;
      const ax = tf.util.parseAxisParam(axis, x.shape)[0];
      const sizes = typeof numOrSizeSplits === 'number'
        ? Array(numOrSizeSplits).fill(x.shape[ax] / numOrSizeSplits) as number[]
        : numOrSizeSplits.map((s) => (s === -1 ? x.shape[ax] - numOrSizeSplits.reduce((p, q) => p + (q === -1 ? 0 : q), 0) : s));
      return (splitLastAxisSimd(x, sizes, ax) ?? runReplacedMany('wasm', tf.SplitV, i, a)) as unknown as Tensor;
    }),
    ...fixes('wasm'),
  ],
  cpu: fixes('cpu'),
};

/**
 * The gradient of ReLU6 as dy * step(x * (6 - x)): 1 exactly where 0 < x < 6 (PyTorch's
 * hardtanh convention; tfjs's own also passes the gradient at x = 6). tfjs's runs LessEqual
 * (a generic compare to bool, slow on wasm), Step, a bool multiply, Cast and Multiply: ~3x
 * slower on wasm (measured), ~7 % of a MobileNetV2 training step. Backend independent.
 */
export const RELU6_GRADIENT: tf.GradConfig = {
  kernelName: tf.Relu6,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved;
    // On wasm one SIMD pass (elementwise-wasm.ts).
    return { x: () => relu6GradSimd(dy as Tensor, x) ?? tf.mul(dy as Tensor, tf.step(tf.mul(x, tf.sub(6, x)))) };
  },
};

function isOurs(k: tf.KernelConfig | undefined): boolean {
  return !!k && (k.kernelFunc as unknown as Record<string, boolean>)[MARK] === true;
}

/**
 * Registers the kernels training needs on `backend` ('wasm' or 'cpu'; others need none).
 * Idempotent. Call it after the backend's package is loaded: its own registration would
 * otherwise replace ours.
 */
export function registerTrainingKernels(backend: string): void {
  tf.registerGradient(RELU6_GRADIENT);
  for (const k of TRAINING_KERNELS[backend] ?? []) {
    const existing = tf.getKernel(k.kernelName, backend);
    if (isOurs(existing)) continue;
    if (existing) {
      replacedKernels.set(`${backend}/${k.kernelName}`, existing);
      tf.unregisterKernel(k.kernelName, backend);
    }
    tf.registerKernel(k);
  }
}

/** registerTrainingKernels('wasm'). */
export function registerWasmGradKernels(): void {
  registerTrainingKernels('wasm');
}

/** True when every kernel of this module for `backend` is the one registered. */
export function trainingKernelsRegistered(backend: string): boolean {
  return (TRAINING_KERNELS[backend] ?? []).every((k) => isOurs(tf.getKernel(k.kernelName, backend)));
}
