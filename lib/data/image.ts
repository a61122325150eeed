/**
 * Image codec on sharp (libvips): decoding runs on libuv's thread pool, so it never blocks
 * the Node-RED event loop. Everything becomes an RGB RawImage (grayscale expanded, alpha
 * flattened onto black).
 */
import sharp from 'sharp';
import type { Metadata } from 'sharp';
import { ContractError, RawImage, describeValue, expectRawImage } from '../contract';

export const DEFAULT_MAX_PIXELS = 40_000_000;

export interface DecodeOptions {
  /** Refuse images with more pixels than this (decompression bombs, mistaken inputs). */
  maxPixels?: number;
  /** Called with the size read from the header before any pixel is decoded (a memory budget's check); throws to refuse. */
  check?: (width: number, height: number) => void;
}

/** Decodes any format sharp reads (JPEG, PNG, WebP, TIFF, GIF, AVIF...) to RGB. */
export async function decodeImage(input: Buffer, opts: DecodeOptions = {}): Promise<RawImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Buffer.isBuffer(input) || input.length === 0) {
    throw new ContractError(`expected an encoded image Buffer (JPEG, PNG, WebP...) or a RawImage, got ${describeValue(input)}`);
  }
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ContractError(`not an image sharp can read (${(err as Error).message}); got ${describeValue(input)} starting ${input.subarray(0, 4).toString('hex')}`);
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w <= 0 || h <= 0) throw new ContractError(`image has zero size (${w}x${h})`);
  if (w * h > maxPixels) throw new ContractError(`image is ${w}x${h} = ${w * h} pixels, above the limit of ${maxPixels}`);
  opts.check?.(w, h);
  try {
    const { data, info } = await sharp(input, { failOn: 'truncated', limitInputPixels: maxPixels })
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    // sharp's Buffer as it is: Buffers are what travels on wires (see lib/contract).
    return { width: info.width, height: info.height, channels: 3, data };
  } catch (err) {
    throw new ContractError(`corrupt or truncated ${meta.format ?? 'image'} (${w}x${h}): ${(err as Error).message}`);
  }
}

/**
 * Accepts either an encoded Buffer or a RawImage (its data a Buffer or a Uint8Array of any
 * realm); checks the pixel limit on both. A RawImage comes back with its data as a Buffer.
 */
export async function toRawImage(input: unknown, opts: DecodeOptions = {}): Promise<RawImage> {
  if (Buffer.isBuffer(input)) return decodeImage(input, opts);
  if (input && typeof input === 'object' && !ArrayBuffer.isView(input) && 'width' in input && 'data' in input) {
    const image = expectRawImage(input, 'image');
    const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
    if (image.width * image.height > maxPixels) {
      throw new ContractError(`image is ${image.width}x${image.height} = ${image.width * image.height} pixels, above the limit of ${maxPixels}`);
    }
    opts.check?.(image.width, image.height);
    return image;
  }
  throw new ContractError(`expected an encoded image Buffer (JPEG, PNG, WebP...) or a RawImage {width, height, channels: 3, data}, got ${describeValue(input)}`);
}

export type EncodeFormat = 'png' | 'jpeg';

export async function encodeImage(img: RawImage, format: EncodeFormat = 'png', quality = 90): Promise<Buffer> {
  const s = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), {
    raw: { width: img.width, height: img.height, channels: 3 },
  });
  return format === 'jpeg' ? s.jpeg({ quality }).toBuffer() : s.png().toBuffer();
}

/** Resizes an RGB image with sharp; `fit: 'fill'` ignores aspect ratio (sizes are exact). */
export async function resizeImage(img: RawImage, width: number, height: number): Promise<RawImage> {
  if (img.width === width && img.height === height) return img;
  const { data, info } = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), {
    raw: { width: img.width, height: img.height, channels: 3 },
  }).resize(width, height, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}
