/**
 * Training-time augmentation as DeepLab does it: a random scale (bilinear for the image,
 * nearest for the label), a random crop of fixed size where the scaled image is padded
 * bottom/right with the mean colour (which normalises to zero) and the label with the
 * ignore index, then a random mirror. Only the crop window of the scaled image is computed,
 * so the cost is the crop's pixel count whatever the scale.
 */
import { ContractError, LabelMap, RawImage } from '../contract';
import { Rng } from '../runtime/random';

export type RGBf = [number, number, number];

export interface AugmentOptions {
  /** Crop height and width in pixels (DeepLab's default 321 x 321). */
  cropHeight: number;
  cropWidth: number;
  /** Random scale range (default 0.5..1.5); 1..1 disables scaling. */
  scaleMin: number;
  scaleMax: number;
  mirror: boolean;
  /** The value of padded image pixels, RGB 0..255: the preprocessing's mean (models/preprocess padValueFor). */
  padValue: RGBf;
  /** The value of padded label pixels (default 255, ignored by the loss). */
  ignoreIndex?: number;
}

export interface AugmentParams {
  scale: number;
  flip: boolean;
  /** Top-left corner of the crop in the scaled and padded image. */
  offsetX: number;
  offsetY: number;
}

export function scaledSize(size: number, scale: number): number {
  return Math.max(1, Math.round(size * scale));
}

/** Draws one sample's augmentation; the draws are always made in the same order. */
export function drawAugment(rng: Rng, width: number, height: number, o: AugmentOptions): AugmentParams {
  const scale = o.scaleMax > o.scaleMin ? rng.uniform(o.scaleMin, o.scaleMax) : o.scaleMin;
  const sh = scaledSize(height, scale);
  const sw = scaledSize(width, scale);
  const offsetY = rng.int(Math.max(sh, o.cropHeight) - o.cropHeight + 1);
  const offsetX = rng.int(Math.max(sw, o.cropWidth) - o.cropWidth + 1);
  const flip = o.mirror ? rng.next() < 0.5 : false;
  return { scale, flip, offsetX, offsetY };
}

/**
 * Writes the augmented crop of one sample into batch arrays: the image as float RGB 0..255 HWC
 * at `imageOffset` (elements), the label at `labelOffset`.
 */
export function augmentInto(
  image: RawImage, label: LabelMap, p: AugmentParams, o: AugmentOptions,
  outImage: Float32Array, imageOffset: number, outLabel: Uint8Array, labelOffset: number,
): void {
  const { width: W, height: H } = image;
  if (label.width !== W || label.height !== H) {
    throw new ContractError(`image is ${W}x${H} but its label mask is ${label.width}x${label.height}`);
  }
  const ignore = o.ignoreIndex ?? 255;
  const sh = scaledSize(H, p.scale);
  const sw = scaledSize(W, p.scale);
  const fy = H / sh;
  const fx = W / sw;
  const CH = o.cropHeight;
  const CW = o.cropWidth;
  const src = image.data;
  const lab = label.data;
  const [pr, pg, pb] = o.padValue;
  // Per output column: the scaled column, its two source columns and weight (or -1 in the padding).
  const x0s = new Int32Array(CW);
  const x1s = new Int32Array(CW);
  const wxs = new Float32Array(CW);
  const xns = new Int32Array(CW);
  for (let x = 0; x < CW; x++) {
    const xs = (p.flip ? CW - 1 - x : x) + p.offsetX;
    if (xs >= sw) {
      x0s[x] = -1;
      continue;
    }
    // Half-pixel centres (as cv2 / PIL resize): scale 1 maps pixels onto themselves.
    const sx = Math.min(W - 1, Math.max(0, (xs + 0.5) * fx - 0.5));
    const x0 = Math.floor(sx);
    x0s[x] = x0;
    x1s[x] = Math.min(W - 1, x0 + 1);
    wxs[x] = sx - x0;
    xns[x] = Math.min(W - 1, Math.floor((xs + 0.5) * fx));
  }
  for (let y = 0; y < CH; y++) {
    const ys = y + p.offsetY;
    let oi = imageOffset + y * CW * 3;
    let ol = labelOffset + y * CW;
    if (ys >= sh) {
      for (let x = 0; x < CW; x++, oi += 3, ol++) {
        outImage[oi] = pr;
        outImage[oi + 1] = pg;
        outImage[oi + 2] = pb;
        outLabel[ol] = ignore;
      }
      continue;
    }
    const sy = Math.min(H - 1, Math.max(0, (ys + 0.5) * fy - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(H - 1, y0 + 1);
    const wy = sy - y0;
    const yn = Math.min(H - 1, Math.floor((ys + 0.5) * fy));
    const r0 = y0 * W;
    const r1 = y1 * W;
    for (let x = 0; x < CW; x++, oi += 3, ol++) {
      const x0 = x0s[x];
      if (x0 < 0) {
        outImage[oi] = pr;
        outImage[oi + 1] = pg;
        outImage[oi + 2] = pb;
        outLabel[ol] = ignore;
        continue;
      }
      const x1 = x1s[x];
      const wx = wxs[x];
      const a = (r0 + x0) * 3;
      const b = (r0 + x1) * 3;
      const c = (r1 + x0) * 3;
      const d = (r1 + x1) * 3;
      for (let k = 0; k < 3; k++) {
        const top = src[a + k] + (src[b + k] - src[a + k]) * wx;
        const bot = src[c + k] + (src[d + k] - src[c + k]) * wx;
        outImage[oi + k] = top + (bot - top) * wy;
      }
      outLabel[ol] = lab[yn * W + xns[x]];
    }
  }
}

/** One augmented sample as its own arrays. */
export function augment(image: RawImage, label: LabelMap, p: AugmentParams, o: AugmentOptions): { image: Float32Array; label: Uint8Array } {
  const img = new Float32Array(o.cropHeight * o.cropWidth * 3);
  const lab = new Uint8Array(o.cropHeight * o.cropWidth);
  augmentInto(image, label, p, o, img, 0, lab, 0);
  return { image: img, label: lab };
}
