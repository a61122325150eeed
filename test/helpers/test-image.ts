import { RawImage } from '../../lib/contract';

/** A seeded pseudo-random RGB picture (a linear congruential sequence): the same pixels in every run. */
export function testImage(width: number, height: number, seed = 1): RawImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s >>> 16) & 255;
  }
  return { width, height, channels: 3, data };
}
