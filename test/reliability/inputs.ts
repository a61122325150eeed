/**
 * The hostile but fair inputs of the reliability suite, made here (nothing downloaded): photos at
 * several sizes, a corrupt JPEG, a PNG whose header claims 30000x30000, and a palette PNG whose
 * pixel data inflates far beyond what its header declares (a decompression bomb as ground truth).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import sharp from 'sharp';
import { ROOT } from '../e2e/harness';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

function ihdr(width: number, height: number, colorType: number): Buffer {
  const h = Buffer.alloc(13);
  h.writeUInt32BE(width, 0);
  h.writeUInt32BE(height, 4);
  h[8] = 8; // bit depth
  h[9] = colorType; // 2 RGB, 3 palette
  return chunk('IHDR', h);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A valid PNG header and chunk layout declaring 30000x30000 RGB (2.7 GB of pixels) over a few bytes of data. */
export function hugeHeaderPng(): Buffer {
  return Buffer.concat([PNG_SIGNATURE, ihdr(30000, 30000, 2), chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A palette PNG declaring 513x513 (263 KB of pixel rows) whose zlib stream inflates to `megabytes`
 * MB of zeros, with a correct Adler-32: about 1 KB of file per MB inflated. The stream is one 1 MB
 * block compressed once and repeated (each copy ends with a sync flush, so copies concatenate).
 */
export function inflateBombPng(megabytes = 1024): Buffer {
  const mb = 1 << 20;
  const block = zlib.deflateRawSync(Buffer.alloc(mb), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const final = zlib.deflateRawSync(Buffer.alloc(0));
  const total = megabytes * mb;
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE(((total % 65521) << 16 | 1) >>> 0); // a = 1 + sum(0) = 1, b = total * 1 mod 65521
  const zstream = Buffer.concat([Buffer.from([0x78, 0xda]), ...new Array<Buffer>(megabytes).fill(block), final, adler]);
  const palette = Buffer.alloc(256 * 3);
  for (let i = 0; i < 256; i++) palette.writeUIntBE(i * 0x010101, i * 3, 3);
  return Buffer.concat([PNG_SIGNATURE, ihdr(513, 513, 3), chunk('PLTE', palette), chunk('IDAT', zstream), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A ground-truth mask as a VOC-style palette PNG of width x height: background (class 0) with a
 * centred rectangle of class `cls` and a one-pixel border of 255 (void), as VOC masks have.
 */
export function labelPng(width: number, height: number, cls = 15): Buffer {
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(width + 1); // filter byte 0, then one palette index per pixel
    for (let x = 0; x < width; x++) {
      const inside = x >= width / 4 && x < (3 * width) / 4 && y >= height / 4 && y < (3 * height) / 4;
      const edge = inside && (x === Math.ceil(width / 4) || y === Math.ceil(height / 4));
      row[x + 1] = edge ? 255 : inside ? cls : 0;
    }
    rows.push(row);
  }
  const palette = Buffer.alloc(256 * 3);
  for (let i = 0; i < 256; i++) palette.writeUIntBE((i * 2654435761) & 0xffffff, i * 3, 3);
  return Buffer.concat([PNG_SIGNATURE, ihdr(width, height, 3), chunk('PLTE', palette), chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

/** A JPEG start-of-image marker followed by noise. */
export function corruptJpeg(bytes = 20_000): Buffer {
  const b = Buffer.alloc(bytes);
  let s = 12345;
  for (let i = 0; i < bytes; i++) b[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[3] = 0xe0;
  return b;
}

/** One of the package's sample photos (a real VOC picture) with its ground-truth mask (a VOC palette PNG). */
export function samplePair(id = 'vainf_000'): { image: Buffer; mask: Buffer } {
  return {
    image: fs.readFileSync(path.join(ROOT, 'sample-data', 'images', `${id}.jpg`)),
    mask: fs.readFileSync(path.join(ROOT, 'sample-data', 'masks', `${id}.png`)),
  };
}

/** A sample photo resized to width x height (cover, so every size is a real picture), as JPEG. */
export function photoJpeg(width: number, height: number, id = 'vainf_294'): Promise<Buffer> {
  return sharp(path.join(ROOT, 'sample-data', 'images', `${id}.jpg`)).resize(width, height, { fit: 'cover' }).jpeg({ quality: 85 }).toBuffer();
}
