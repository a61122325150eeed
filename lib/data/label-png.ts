/**
 * A label map as an indexed (palette) PNG: the pixel values are the class ids, the palette gives
 * them their colours. The layout VOC ships its masks in: a browser shows a coloured mask, and
 * decodeLabelImage (or PIL) reads the class ids back exactly.
 */
import * as zlib from 'zlib';
import type { LabelMap } from '../contract';
import type { RGB } from './palette';

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** colors[i] colours class i; ids without a colour (the ignore index among them) are white. */
export function encodeLabelPng(labels: LabelMap, colors: readonly RGB[]): Buffer {
  const { width, height, data } = labels;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // colour type: indexed
  let top = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > top) top = data[i];
  const plte = Buffer.alloc(3 * (top + 1), 255);
  for (let c = 0; c <= top && c < colors.length; c++) plte.set(colors[c], 3 * c);
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter: none
    raw.set(data.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('PLTE', plte),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
