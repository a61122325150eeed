/**
 * Segmentation to pictures: a colour mask, an overlay on the photo, and a legend of the
 * classes present, encoded as PNG or JPEG for image-output nodes and dashboards.
 */
import sharp from 'sharp';
import { LabelMap, RawImage } from '../contract';
import { classColors, classNames, RGB } from '../data/palette';
import { labelIds } from '../data/labels';

export type RenderMode = 'mask' | 'overlay' | 'side-by-side';
export const RENDER_MODES: RenderMode[] = ['mask', 'overlay', 'side-by-side'];

export interface RenderOptions {
  mode: RenderMode;
  /** Weight of the mask colour in the overlay, 0..1. */
  opacity: number;
  legend: boolean;
  format: 'png' | 'jpeg';
  quality: number;
  names?: readonly string[];
  colors?: readonly RGB[];
  /** Colour of void (ignore) pixels. */
  ignoreColor?: RGB;
}

export const DEFAULT_RENDER: RenderOptions = { mode: 'overlay', opacity: 0.5, legend: true, format: 'png', quality: 85 };

/** Nearest-neighbour resize of a label map (labels must never be blended). */
export function resizeLabelsNearest(l: LabelMap, width: number, height: number): LabelMap {
  if (l.width === width && l.height === height) return l;
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(l.height - 1, Math.floor(((y + 0.5) * l.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(l.width - 1, Math.floor(((x + 0.5) * l.width) / width));
      out[y * width + x] = l.data[sy * l.width + sx];
    }
  }
  return { ...l, width, height, data: out };
}

/** Label ids -> RGB through the class colours. */
export function colorize(l: LabelMap, colors: readonly RGB[], ignoreColor: RGB = [255, 255, 255]): RawImage {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const c = i === l.ignoreIndex ? ignoreColor : colors[i] ?? [0, 0, 0];
    lut.set(c, i * 3);
  }
  const out = new Uint8Array(l.width * l.height * 3);
  for (let i = 0; i < l.data.length; i++) {
    const k = l.data[i] * 3;
    out[i * 3] = lut[k];
    out[i * 3 + 1] = lut[k + 1];
    out[i * 3 + 2] = lut[k + 2];
  }
  return { width: l.width, height: l.height, channels: 3, data: out };
}

/** Alpha blend: opacity of the mask over the photo; void pixels show the photo alone. */
export function blend(image: RawImage, mask: RawImage, labels: LabelMap, opacity: number): RawImage {
  const out = new Uint8Array(image.data.length);
  const a = Math.min(1, Math.max(0, opacity));
  for (let i = 0; i < labels.data.length; i++) {
    const w = labels.data[i] === labels.ignoreIndex ? 0 : a;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(image.data[i * 3 + c] * (1 - w) + mask.data[i * 3 + c] * w);
  }
  return { ...image, data: out };
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[ch]!);
}

function legendSvg(ids: number[], names: string[], colors: readonly RGB[], height: number, width: number): Buffer {
  const row = 20;
  const rows = ids.map((id, i) => {
    const [r, g, b] = colors[id] ?? [0, 0, 0];
    const y = 8 + i * row;
    return `<rect x="8" y="${y}" width="14" height="14" fill="rgb(${r},${g},${b})" stroke="#000" stroke-width="0.5"/>` +
      `<text x="28" y="${y + 12}" font-family="sans-serif" font-size="13" fill="#111">${escapeXml(names[id] ?? `class ${id}`)}</text>`;
  });
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="#fff"/>${rows.join('')}</svg>`);
}

export interface Rendered {
  buffer: Buffer;
  width: number;
  height: number;
  /** The classes in the picture, with the colour they are drawn in (`#rrggbb`, for a legend drawn elsewhere). */
  classesPresent: { id: number; name: string; color: string }[];
}

/**
 * Bytes a rendering allocates, for a memory budget: the labels resized to the picture, the colour
 * mask, the picture (twice as wide side by side) and about two more pictures' worth while sharp
 * encodes it (and composes the legend).
 */
export function renderMemory(labels: { width: number; height: number }, image: { width: number; height: number } | undefined, mode: RenderMode): number {
  const n = image ? image.width * image.height : labels.width * labels.height;
  const picture = image && mode === 'side-by-side' ? 6 * n : 3 * n;
  return n + 3 * n + 3 * picture;
}

export async function renderSegmentation(labels: LabelMap, image: RawImage | undefined, classes: number, o: RenderOptions = DEFAULT_RENDER): Promise<Rendered> {
  const colors = classColors(Math.max(classes, 1), o.colors);
  const names = classNames(Math.max(classes, 1), o.names);
  const target = image ?? { width: labels.width, height: labels.height };
  const l = resizeLabelsNearest(labels, target.width, target.height);
  const mask = colorize(l, colors, o.ignoreColor);
  let picture: RawImage;
  if (!image || o.mode === 'mask') picture = mask;
  else if (o.mode === 'overlay') picture = blend(image, mask, l, o.opacity);
  else {
    const W = image.width * 2;
    const data = new Uint8Array(W * image.height * 3);
    for (let y = 0; y < image.height; y++) {
      data.set(image.data.subarray(y * image.width * 3, (y + 1) * image.width * 3), y * W * 3);
      data.set(mask.data.subarray(y * image.width * 3, (y + 1) * image.width * 3), (y * W + image.width) * 3);
    }
    picture = { width: W, height: image.height, channels: 3, data };
  }
  const present = labelIds(l);
  let s = sharp(Buffer.from(picture.data.buffer, picture.data.byteOffset, picture.data.length), { raw: { width: picture.width, height: picture.height, channels: 3 } });
  let width = picture.width;
  let height = picture.height;
  if (o.legend && present.length) {
    const legendW = 160;
    const legendH = Math.max(picture.height, 16 + present.length * 20);
    s = sharp({ create: { width: picture.width + legendW, height: legendH, channels: 3, background: '#ffffff' } })
      .composite([
        { input: await s.png().toBuffer(), left: 0, top: 0 },
        { input: legendSvg(present, names, colors, legendH, legendW), left: picture.width, top: 0 },
      ]);
    width += legendW;
    height = legendH;
  }
  const buffer = o.format === 'jpeg' ? await s.jpeg({ quality: o.quality }).toBuffer() : await s.png().toBuffer();
  const hex = (c: RGB) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
  return { buffer, width, height, classesPresent: present.map((id) => ({ id, name: names[id] ?? `class ${id}`, color: hex(colors[id] ?? [0, 0, 0]) })) };
}
