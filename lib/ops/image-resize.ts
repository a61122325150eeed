/**
 * Area (box) downscaling of an RGB image in plain JavaScript, for stages that work at a smaller
 * resolution than the image (the dense CRF under a memory budget). Every output pixel is the
 * mean of the source area it covers, fractional edges weighted by their overlap, so colours are
 * averaged, not aliased. One output row at a time: the only scratch is two rows of floats.
 */
import { RawImage } from '../contract';
import { bilinearChannels } from './score-map';

/** For each output index, the source indices it covers and their weights (summing to 1). */
function coverage(n: number, m: number): { start: Int32Array; weights: Float32Array[] } {
  const start = new Int32Array(m);
  const weights: Float32Array[] = [];
  const step = n / m;
  for (let i = 0; i < m; i++) {
    const a = i * step;
    const b = Math.min(n, (i + 1) * step);
    const s = Math.floor(a);
    const e = Math.min(n, Math.ceil(b));
    const w = new Float32Array(e - s);
    for (let k = s; k < e; k++) w[k - s] = (Math.min(b, k + 1) - Math.max(a, k)) / step;
    start[i] = s;
    weights.push(w);
  }
  return { start, weights };
}

/** The image at width x height (no larger than it is), by area averaging. */
export function areaDownscale(image: RawImage, width: number, height: number): RawImage {
  const { width: W, height: H, data } = image;
  if (width === W && height === H) return image;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 && width <= W && height <= H)) {
    throw new Error(`area downscale of ${W}x${H} needs a size from 1x1 to ${W}x${H}, got ${width}x${height}`);
  }
  const xs = coverage(W, width);
  const ys = coverage(H, height);
  const out = Buffer.allocUnsafe(width * height * 3);
  const row = new Float32Array(width * 3);
  const acc = new Float32Array(width * 3);
  for (let y = 0; y < height; y++) {
    acc.fill(0);
    const wy = ys.weights[y];
    for (let k = 0; k < wy.length; k++) {
      const src = (ys.start[y] + k) * W * 3;
      // This source row reduced horizontally, then weighted into the output row.
      for (let x = 0; x < width; x++) {
        const wx = xs.weights[x];
        let r = 0;
        let g = 0;
        let b = 0;
        for (let j = 0, p = src + xs.start[x] * 3; j < wx.length; j++, p += 3) {
          r += wx[j] * data[p];
          g += wx[j] * data[p + 1];
          b += wx[j] * data[p + 2];
        }
        row[x * 3] = r;
        row[x * 3 + 1] = g;
        row[x * 3 + 2] = b;
      }
      const f = wy[k];
      for (let i = 0; i < row.length; i++) acc[i] += f * row[i];
    }
    const o = y * width * 3;
    for (let i = 0; i < acc.length; i++) out[o + i] = Math.min(255, Math.max(0, Math.round(acc[i])));
  }
  return { width, height, channels: 3, data: out };
}

/**
 * Bilinear resize of an RGB image to width x height as float32 values (0..255, HWC), with the
 * sample positions of tfjs's resizeBilinear (alignCorners, or half-pixel centres otherwise) and of
 * resizeScoreMap. The forward wrapper resizes a photo to its run's size with it before the pixels
 * enter tfjs: only the run's size then reaches the engine's memory (the wasm backend's heap grows
 * to its largest tensors and never shrinks), not the full photo as int32 and float32.
 */
export function bilinearRgb(image: RawImage, width: number, height: number, alignCorners: boolean): Float32Array {
  return bilinearChannels(image.data, image.width, image.height, 3, width, height, alignCorners);
}
