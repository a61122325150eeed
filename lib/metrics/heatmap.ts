/**
 * The confusion matrix as a picture: one square per (ground truth, prediction) cell, shaded by
 * the share of that ground-truth row (row-normalised, so rare classes are as readable as
 * frequent ones), with a strip of class colours along the top and left edges as the key.
 */
import { RawImage } from '../contract';
import { RGB, classColors } from '../data/palette';
import { encodeImage } from '../data/image';

export interface HeatmapOptions {
  /** Cell size in pixels; default fits the matrix in about 512 px (at least 2, at most 24). */
  cell?: number;
  /** Colours of the key strips (by class id); default the VOC colour map. */
  colors?: readonly RGB[];
}

/** White (0) through blue to near-black blue (1): monotone in lightness, readable in grey. */
function shade(t: number): RGB {
  const u = Math.min(1, Math.max(0, t));
  return [Math.round(255 * (1 - u) ** 1.5), Math.round(255 * (1 - u) ** 1.1 * (1 - 0.45 * u)), Math.round(255 - 140 * u ** 2)];
}

/** Draws a classes x classes matrix (rows ground truth) as an RGB image. */
export function confusionHeatmap(confusion: readonly (readonly number[])[], opts: HeatmapOptions = {}): RawImage {
  const C = confusion.length;
  const cell = Math.max(2, Math.min(24, Math.round(opts.cell ?? Math.floor(512 / (C + 1)))));
  const colors = classColors(C, opts.colors);
  const side = (C + 1) * cell + 1;
  const data = new Uint8Array(side * side * 3).fill(255);
  const fill = (x0: number, y0: number, w: number, h: number, c: RGB) => {
    for (let y = y0; y < y0 + h; y++) {
      for (let x = x0; x < x0 + w; x++) data.set(c, (y * side + x) * 3);
    }
  };
  for (let k = 0; k < C; k++) {
    // Key strips: prediction classes along the top, ground-truth classes down the left.
    fill((k + 1) * cell + 1, 0, cell - 1, cell - 1, colors[k]);
    fill(0, (k + 1) * cell + 1, cell - 1, cell - 1, colors[k]);
  }
  for (let r = 0; r < C; r++) {
    const row = confusion[r];
    let sum = 0;
    for (let c = 0; c < C; c++) sum += row[c];
    for (let c = 0; c < C; c++) {
      const t = sum > 0 ? row[c] / sum : 0;
      fill((c + 1) * cell + 1, (r + 1) * cell + 1, cell - 1, cell - 1, sum > 0 ? shade(t) : [235, 235, 235]);
    }
  }
  return { width: side, height: side, channels: 3, data };
}

export async function confusionHeatmapPng(confusion: readonly (readonly number[])[], opts: HeatmapOptions = {}): Promise<Buffer> {
  return encodeImage(confusionHeatmap(confusion, opts), 'png');
}
