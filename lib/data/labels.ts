/**
 * Ground-truth label masks to LabelMaps. VOC masks are palette PNGs whose pixel values
 * are the class ids; sharp (and pngjs) return the palette colours instead, so PNGs are
 * parsed here: chunks, IDAT inflate, the five row filters, Adam7, every bit depth.
 *
 * How each kind of image becomes class ids:
 * - indexed colour (palette): the palette index of each pixel;
 * - grayscale: the grey value (8 bit; 1/2/4-bit values unscaled; 16 bit only when <= 255);
 *   an alpha channel is ignored;
 * - RGB(A): the exact colour looked up in a palette (the VOC colour map by default), an error
 *   on a colour not in it; RGBA pixels with alpha 0 become void.
 * Other formats (BMP, TIFF...) are decoded by sharp and then follow the same rules.
 */
import { promisify } from 'util';
import * as zlib from 'zlib';
import sharp from 'sharp';
import type { OutputInfo } from 'sharp';
import { ContractError, LabelMap, describeValue } from '../contract';
import { RGB, vocPalette } from './palette';
import { DEFAULT_MAX_PIXELS } from './image';

const inflate = promisify(zlib.inflate);

export const IGNORE_INDEX = 255;

export interface LabelDecodeOptions {
  /** The value of void pixels in the result (default 255). */
  ignoreIndex?: number;
  /** Colour -> class id table for RGB masks (index = class id); default the VOC colour map of 256 entries. */
  palette?: readonly RGB[];
  /** Refuse masks with more pixels than this. */
  maxPixels?: number;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export enum PngColorType {
  Gray = 0,
  RGB = 2,
  Indexed = 3,
  GrayAlpha = 4,
  RGBA = 6,
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const ALLOWED_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** A decoded PNG as raw samples: no palette lookup, no scaling of low bit depths. */
export interface PngSamples {
  width: number;
  height: number;
  bitDepth: number;
  colorType: PngColorType;
  channels: number;
  /** width*height*channels samples, row-major; Uint16Array for 16-bit images. */
  data: Uint8Array | Uint16Array;
  /** PLTE entries (RGB triplets) of an indexed image. */
  palette?: Uint8Array;
}

export function isPng(buf: Uint8Array): boolean {
  return buf.length >= 8 && Buffer.from(buf.buffer, buf.byteOffset, 8).equals(PNG_SIGNATURE);
}

/** Decodes a PNG to its raw samples (palette indices for indexed images). */
export async function decodePngSamples(buf: Buffer, maxPixels = DEFAULT_MAX_PIXELS): Promise<PngSamples> {
  if (!isPng(buf)) throw new ContractError(`not a PNG: got ${describeValue(buf)}`);
  let pos = 8;
  let header: { width: number; height: number; bitDepth: number; colorType: number; interlace: number } | undefined;
  let palette: Uint8Array | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  while (pos + 12 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (pos + 12 + len > buf.length) throw new ContractError(`truncated PNG: chunk ${type} of ${len} bytes runs past the end`);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    const crc = buf.readUInt32BE(pos + 8 + len);
    if (zlib.crc32(buf.subarray(pos + 4, pos + 8 + len)) !== crc) throw new ContractError(`corrupt PNG: CRC mismatch in chunk ${type}`);
    pos += 12 + len;
    if (type === 'IHDR') {
      if (len !== 13) throw new ContractError('corrupt PNG: IHDR is not 13 bytes');
      header = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        bitDepth: body[8],
        colorType: body[9],
        interlace: body[12],
      };
      if (body[10] !== 0 || body[11] !== 0) throw new ContractError('unsupported PNG: unknown compression or filter method');
    } else if (type === 'PLTE') {
      palette = new Uint8Array(body);
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!header) throw new ContractError('corrupt PNG: no IHDR chunk');
  if (!ended && idat.length === 0) throw new ContractError('truncated PNG: no image data');
  const { width, height, bitDepth, colorType, interlace } = header;
  const channels = CHANNELS[colorType];
  if (!channels) throw new ContractError(`corrupt PNG: colour type ${colorType}`);
  if (!ALLOWED_DEPTHS[colorType].includes(bitDepth)) throw new ContractError(`corrupt PNG: bit depth ${bitDepth} with colour type ${colorType}`);
  if (interlace > 1) throw new ContractError(`corrupt PNG: interlace method ${interlace}`);
  if (width === 0 || height === 0) throw new ContractError(`PNG has zero size (${width}x${height})`);
  if (width * height > maxPixels) throw new ContractError(`mask is ${width}x${height} = ${width * height} pixels, above the limit of ${maxPixels}`);

  // The header fixes the size of the inflated data: a stream that inflates beyond it (a
  // decompression bomb) is stopped there instead of filling memory.
  const expected = inflatedSize(width, height, channels, bitDepth, interlace === 1);
  let raw: Buffer;
  try {
    raw = await inflate(Buffer.concat(idat), { maxOutputLength: expected });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ContractError(`corrupt PNG: image data inflates beyond the ${expected} bytes its ${width}x${height} header declares`);
    }
    throw new ContractError(`corrupt PNG: image data does not inflate (${(err as Error).message})`);
  }
  const data = bitDepth === 16 ? new Uint16Array(width * height * channels) : new Uint8Array(width * height * channels);
  const passes = interlace ? ADAM7 : [[0, 0, 1, 1]];
  let offset = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx);
    const ph = Math.ceil((height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    offset = unfilterPass(raw, offset, pw, ph, channels, bitDepth, (py, row) => {
      const rowStart = (y0 + py * dy) * width;
      if (bitDepth === 8 && dx === 1) {
        data.set(row.subarray(0, pw * channels), rowStart * channels);
        return;
      }
      // Samples of this row: bytes, big-endian 16-bit, or packed 1/2/4-bit values (MSB first).
      const perByte = 8 / bitDepth;
      const mask = (1 << bitDepth) - 1;
      for (let px = 0; px < pw; px++) {
        const o = (rowStart + x0 + px * dx) * channels;
        for (let c = 0; c < channels; c++) {
          const k = px * channels + c;
          if (bitDepth === 8) data[o + c] = row[k];
          else if (bitDepth === 16) data[o + c] = (row[2 * k] << 8) | row[2 * k + 1];
          else data[o + c] = (row[Math.floor(k / perByte)] >> (8 - bitDepth * ((k % perByte) + 1))) & mask;
        }
      }
    });
  }
  return { width, height, bitDepth, colorType, channels, data, palette };
}

/** Bytes of the filtered scanlines the header describes (one filter byte per row), over all passes. */
function inflatedSize(width: number, height: number, channels: number, bitDepth: number, interlaced: boolean): number {
  let total = 0;
  for (const [x0, y0, dx, dy] of interlaced ? ADAM7 : [[0, 0, 1, 1]]) {
    const pw = Math.ceil((width - x0) / dx);
    const ph = Math.ceil((height - y0) / dy);
    if (pw > 0 && ph > 0) total += ph * (1 + Math.ceil((pw * channels * bitDepth) / 8));
  }
  return total;
}

/** Adam7 passes: [x start, y start, x step, y step]. */
const ADAM7 = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
];

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/**
 * Undoes the row filters of one (sub)image starting at `offset` of the inflated stream and
 * hands each unfiltered row (valid until the next call) to `put`. Returns the offset after it.
 */
function unfilterPass(
  raw: Buffer, offset: number, w: number, h: number, channels: number, depth: number,
  put: (y: number, row: Uint8Array) => void,
): number {
  const stride = Math.ceil((w * channels * depth) / 8);
  const bpp = Math.max(1, (channels * depth) >> 3);
  const need = (stride + 1) * h;
  if (raw.length - offset < need) throw new ContractError(`truncated PNG: image data holds ${raw.length - offset} bytes of the ${need} needed`);
  let prev = new Uint8Array(stride);
  let cur = new Uint8Array(stride);
  for (let y = 0; y < h; y++) {
    const filter = raw[offset];
    const line = raw.subarray(offset + 1, offset + 1 + stride);
    offset += stride + 1;
    switch (filter) {
      case 0:
        cur.set(line);
        break;
      case 1:
        for (let i = 0; i < stride; i++) cur[i] = line[i] + (i >= bpp ? cur[i - bpp] : 0);
        break;
      case 2:
        for (let i = 0; i < stride; i++) cur[i] = line[i] + prev[i];
        break;
      case 3:
        for (let i = 0; i < stride; i++) cur[i] = line[i] + (((i >= bpp ? cur[i - bpp] : 0) + prev[i]) >> 1);
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          cur[i] = line[i] + (i >= bpp ? paeth(cur[i - bpp], prev[i], prev[i - bpp]) : prev[i]);
        }
        break;
      default:
        throw new ContractError(`corrupt PNG: unknown row filter ${filter} in row ${y}`);
    }
    put(y, cur);
    const t = prev;
    prev = cur;
    cur = t;
  }
  return offset;
}

/** Exact colour -> class id, a clear error on a colour outside the palette. */
function mapColours(
  width: number, height: number, channels: number, at: (i: number) => number, palette: readonly RGB[], ignoreIndex: number,
): Uint8Array {
  const lut = new Map<number, number>();
  // First entry wins where a palette repeats a colour.
  for (let i = Math.min(palette.length, 256) - 1; i >= 0; i--) lut.set((palette[i][0] << 16) | (palette[i][1] << 8) | palette[i][2], i);
  const n = width * height;
  const out = new Uint8Array(n);
  let lastKey = -1;
  let lastId = 0;
  for (let p = 0; p < n; p++) {
    const o = p * channels;
    if (channels === 4 && at(o + 3) === 0) {
      out[p] = ignoreIndex;
      continue;
    }
    const key = (at(o) << 16) | (at(o + 1) << 8) | at(o + 2);
    if (key !== lastKey) {
      const id = lut.get(key);
      if (id === undefined) {
        throw new ContractError(`mask colour rgb(${at(o)}, ${at(o + 1)}, ${at(o + 2)}) at pixel (${p % width}, ${Math.floor(p / width)}) is not in the label palette: an RGB mask must use the exact palette colours (a JPEG or resized mask loses them)`);
      }
      lastKey = key;
      lastId = id;
    }
    out[p] = lastId;
  }
  return out;
}

function checkIgnore(ignoreIndex: number): void {
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < 0 || ignoreIndex > 255) {
    throw new ContractError(`ignoreIndex must be an integer in 0..255, got ${ignoreIndex}`);
  }
}

/** The class ids of a decoded PNG (see the module comment for the rules). */
export function labelsFromPngSamples(png: PngSamples, opts: LabelDecodeOptions = {}): LabelMap {
  const ignoreIndex = opts.ignoreIndex ?? IGNORE_INDEX;
  checkIgnore(ignoreIndex);
  const { width, height, channels, data, colorType, bitDepth } = png;
  const n = width * height;
  if (colorType === PngColorType.Indexed || colorType === PngColorType.Gray || colorType === PngColorType.GrayAlpha) {
    if (channels === 1 && bitDepth <= 8) return { width, height, data: data as Uint8Array, ignoreIndex };
    const out = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      const v = data[p * channels];
      if (v > 255) throw new ContractError(`16-bit grayscale mask holds ${v} at pixel (${p % width}, ${Math.floor(p / width)}): class ids must be 0..255`);
      out[p] = v;
    }
    return { width, height, data: out, ignoreIndex };
  }
  // RGB(A): 16-bit samples must be exact 8-bit colours scaled by 257.
  const at = bitDepth === 16
    ? (i: number) => {
      const v = data[i];
      if (v % 257 !== 0) throw new ContractError(`16-bit RGB mask holds sample ${v}, not an exact 8-bit palette colour`);
      return v / 257;
    }
    : (i: number) => data[i];
  return { width, height, data: mapColours(width, height, channels, at, opts.palette ?? vocPalette(256), ignoreIndex), ignoreIndex };
}

/**
 * A label mask image to a LabelMap: palette PNG by index, grayscale by value, RGB through the
 * palette. Inflating runs on libuv's thread pool; the per-pixel passes are linear and light.
 */
export async function decodeLabelImage(buf: Buffer, opts: LabelDecodeOptions = {}): Promise<LabelMap> {
  if (!Buffer.isBuffer(buf) || buf.length === 0) {
    throw new ContractError(`expected a label mask image Buffer (palette PNG, grayscale PNG of class ids or RGB palette colours), got ${describeValue(buf)}`);
  }
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (isPng(buf)) return labelsFromPngSamples(await decodePngSamples(buf, maxPixels), opts);
  // Other lossless formats: sharp gives grey or RGB(A) values.
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(buf, { limitInputPixels: maxPixels }).raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ContractError(`not a mask image that can be read (${(err as Error).message}); got ${describeValue(buf)}`);
  }
  const { data, info } = decoded;
  const ch = info.channels;
  const samples: PngSamples = {
    width: info.width,
    height: info.height,
    bitDepth: 8,
    colorType: ch === 1 ? PngColorType.Gray : ch === 2 ? PngColorType.GrayAlpha : ch === 3 ? PngColorType.RGB : PngColorType.RGBA,
    channels: ch,
    data: new Uint8Array(data.buffer, data.byteOffset, data.length),
  };
  return labelsFromPngSamples(samples, opts);
}

/** Ids present in a label map (void excluded), ascending. */
export function labelIds(map: LabelMap): number[] {
  const seen = new Uint8Array(256);
  for (let i = 0; i < map.data.length; i++) seen[map.data[i]] = 1;
  const out: number[] = [];
  for (let i = 0; i < 256; i++) if (seen[i] && i !== map.ignoreIndex) out.push(i);
  return out;
}
