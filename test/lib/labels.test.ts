import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import sharp from 'sharp';
import { decodeLabelImage, decodePngSamples, labelIds } from '../../lib/data/labels';
import { CLASS_PRESETS, RGB, classPreset, paletteTable, vocPalette } from '../../lib/data/palette';
import { sharedData } from '../helpers/shared-data';

const masks = () => sharedData('voc-samples/SegmentationClass');

function chunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const tb = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(tb));
  return Buffer.concat([len, tb, crc]);
}

/** Forward PNG filter of one row (the reference the decoder must invert). */
function filterRow(type: number, cur: Uint8Array, prev: Uint8Array, bpp: number): Buffer {
  const out = Buffer.alloc(cur.length + 1);
  out[0] = type;
  for (let i = 0; i < cur.length; i++) {
    const a = i >= bpp ? cur[i - bpp] : 0;
    const b = prev[i];
    const c = i >= bpp ? prev[i - bpp] : 0;
    let pred = 0;
    if (type === 1) pred = a;
    else if (type === 2) pred = b;
    else if (type === 3) pred = (a + b) >> 1;
    else if (type === 4) {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    out[i + 1] = (cur[i] - pred) & 255;
  }
  return out;
}

/** A hand-made non-interlaced PNG: rows of samples packed at `depth`, row filter y % 5. */
function encodePng(w: number, h: number, colorType: number, depth: number, samples: number[], palette?: RGB[]): Buffer {
  const ch = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType] as number;
  const stride = Math.ceil((w * ch * depth) / 8);
  const bpp = Math.max(1, (ch * depth) >> 3);
  const rows: Buffer[] = [];
  let prev = new Uint8Array(stride);
  for (let y = 0; y < h; y++) {
    const cur = new Uint8Array(stride);
    for (let x = 0; x < w * ch; x++) {
      const v = samples[y * w * ch + x];
      if (depth === 16) {
        cur[x * 2] = v >> 8;
        cur[x * 2 + 1] = v & 255;
      } else if (depth === 8) cur[x] = v;
      else {
        const per = 8 / depth;
        cur[Math.floor(x / per)] |= v << (8 - depth * ((x % per) + 1));
      }
    }
    rows.push(filterRow(y % 5, cur, prev, bpp));
    prev = cur;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (palette) parts.push(chunk('PLTE', Buffer.from(palette.flat())));
  const z = zlib.deflateSync(Buffer.concat(rows));
  // Two IDAT chunks: the decoder must join them.
  parts.push(chunk('IDAT', z.subarray(0, z.length >> 1)), chunk('IDAT', z.subarray(z.length >> 1)), chunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

describe('lib/data/palette: VOC colour map and class presets', () => {
  it('gives the standard VOC colours', () => {
    const p = vocPalette(256);
    assert.deepEqual(p[0], [0, 0, 0]);
    assert.deepEqual(p[1], [128, 0, 0]);
    assert.deepEqual(p[2], [0, 128, 0]);
    assert.deepEqual(p[7], [128, 128, 128]);
    assert.deepEqual(p[15], [192, 128, 128]);
    assert.deepEqual(p[20], [0, 64, 128]);
    assert.deepEqual(p[255], [224, 224, 192]);
    assert.equal(new Set(p.map((c) => c.join())).size, 256, 'all 256 colours distinct');
  });

  it('has the three presets with one colour per name', () => {
    assert.equal(CLASS_PRESETS.voc21.names.length, 21);
    assert.equal(CLASS_PRESETS.voc21.names[15], 'person');
    assert.equal(CLASS_PRESETS.cityscapes19.names.length, 19);
    assert.deepEqual(CLASS_PRESETS.cityscapes19.colors[0], [128, 64, 128]);
    assert.equal(CLASS_PRESETS.cityscapes19.names[18], 'bicycle');
    assert.equal(CLASS_PRESETS.ade20k150.names.length, 150);
    assert.equal(new Set(CLASS_PRESETS.ade20k150.colors.map((c) => c.join())).size, 150, 'ADE colours distinct');
    for (const p of Object.values(CLASS_PRESETS)) assert.equal(p.colors.length, p.names.length);
    assert.throws(() => classPreset('coco'), /unknown class preset "coco"/);
    const lut = paletteTable();
    assert.deepEqual([...lut.subarray(15 * 3, 16 * 3)], [192, 128, 128]);
    assert.deepEqual([...lut.subarray(255 * 3)], [224, 224, 192]);
  });
});

describe('lib/data/labels: label masks to class ids', () => {
  it('decodes hand-made palette PNGs by index at bit depths 1, 2, 4 and 8 through all five filters', async () => {
    const pal = vocPalette(256);
    for (const depth of [1, 2, 4, 8]) {
      const w = 13;
      const h = 7;
      const max = (1 << depth) - 1;
      const ids = Array.from({ length: w * h }, (_, i) => (i * 7 + (i >> 3)) % (max + 1));
      if (depth === 8) ids[5] = 255;
      const png = encodePng(w, h, 3, depth, ids, pal.slice(0, max + 1));
      const m = await decodeLabelImage(png);
      assert.equal(m.width, w);
      assert.equal(m.height, h);
      assert.equal(m.ignoreIndex, 255);
      assert.deepEqual([...m.data], ids, `depth ${depth}`);
    }
  });

  it('reads grayscale masks as class ids (8 and 16 bit) and refuses 16-bit values over 255', async () => {
    const ids = [0, 1, 2, 20, 255, 7];
    assert.deepEqual([...(await decodeLabelImage(encodePng(3, 2, 0, 8, ids))).data], ids);
    assert.deepEqual([...(await decodeLabelImage(encodePng(3, 2, 0, 16, ids))).data], ids);
    assert.deepEqual([...(await decodeLabelImage(encodePng(3, 2, 4, 8, ids.flatMap((v) => [v, 255])))).data], ids);
    await assert.rejects(decodeLabelImage(encodePng(3, 2, 0, 16, [0, 1, 256, 0, 0, 0])), /holds 256 at pixel \(2, 0\)/);
  });

  it('maps RGB masks exactly through the VOC palette and refuses other colours', async () => {
    const pal = vocPalette(256);
    const ids = [0, 15, 7, 255, 1, 20];
    const rgb = ids.flatMap((i) => pal[i]);
    assert.deepEqual([...(await decodeLabelImage(encodePng(3, 2, 2, 8, rgb))).data], ids);
    const rgba = ids.flatMap((i, k) => [...pal[i], k === 1 ? 0 : 255]);
    assert.deepEqual([...(await decodeLabelImage(encodePng(3, 2, 6, 8, rgba))).data], [0, 255, 7, 255, 1, 20]);
    rgb[4] = 1;
    await assert.rejects(decodeLabelImage(encodePng(3, 2, 2, 8, rgb)), /rgb\(192, 1, 128\) at pixel \(1, 0\) is not in the label palette/);
    // sharp's own RGB PNG (a mask saved by another tool) takes the same path.
    const viaSharp = await sharp(Buffer.from(ids.flatMap((i) => pal[i])), { raw: { width: 3, height: 2, channels: 3 } }).png().toBuffer();
    assert.deepEqual([...(await decodeLabelImage(viaSharp)).data], ids);
  });

  it('agrees with sharp on an interlaced (Adam7) palette PNG', async () => {
    const w = 37;
    const h = 23;
    const rgb = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) {
      const c = vocPalette(256)[(i * 13 + Math.floor(i / w)) % 40];
      rgb.set(c, i * 3);
    }
    const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png({ palette: true, progressive: true, dither: 0, colours: 64 }).toBuffer();
    assert.equal(png[8 + 8 + 12], 1, 'interlaced');
    const s = await decodePngSamples(png);
    assert.equal(s.colorType, 3);
    const ref = await sharp(png).raw().toBuffer();
    for (let i = 0; i < w * h; i++) {
      const k = s.data[i] * 3;
      assert.deepEqual([...s.palette!.subarray(k, k + 3)], [...ref.subarray(i * 3, i * 3 + 3)], `pixel ${i}`);
    }
  });

  it('reports corrupt and truncated PNGs clearly', async () => {
    const png = encodePng(4, 4, 3, 8, new Array(16).fill(1), vocPalette(2));
    const bad = Buffer.from(png);
    bad[40] ^= 0xff;
    await assert.rejects(decodeLabelImage(bad), /CRC mismatch|corrupt PNG/);
    await assert.rejects(decodeLabelImage(png.subarray(0, 50)), /truncated PNG/);
    await assert.rejects(decodeLabelImage(Buffer.from('hello')), /not a mask image/);
    await assert.rejects(decodeLabelImage('x' as unknown as Buffer), /expected a label mask image Buffer/);
  });

  it('stops image data that inflates beyond the header\'s size (a decompression bomb) at that size', async () => {
    // A 513x513 grayscale header over 64 MB of zeros (64 KB compressed): refused without inflating it all.
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(513, 0);
    ihdr.writeUInt32BE(513, 4);
    ihdr[8] = 8;
    ihdr[9] = 0;
    const bomb = zlib.deflateSync(Buffer.alloc(64 << 20), { level: 9 });
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', bomb), chunk('IEND', Buffer.alloc(0))]);
    await assert.rejects(decodeLabelImage(png), /inflates beyond the 263682 bytes its 513x513 header declares/);
    // Exactly the declared size still decodes (interlaced sizes are covered by the Adam7 test above).
    const ok = encodePng(513, 3, 0, 8, new Array(513 * 3).fill(7));
    assert.equal((await decodePngSamples(ok)).data.length, 513 * 3);
  });

  it('reads the real VOC masks by palette index with the classes the README lists', async function () {
    const MASKS = masks();
    const expect: Record<string, number[]> = {
      vainf_000: [1], vainf_001: [1], vainf_166: [1], vainf_417: [1],
      vainf_120: [2, 5], vainf_060: [3], vainf_114: [3], vainf_474: [6], vainf_294: [7, 15],
      vainf_293: [10], vainf_008: [13], vainf_582: [14, 15], vainf_020: [17], vainf_023: [17],
    };
    for (const [id, classes] of Object.entries(expect)) {
      const m = await decodeLabelImage(fs.readFileSync(path.join(MASKS, `${id}.png`)));
      assert.equal(m.width, 513);
      assert.equal(m.height, 513);
      assert.deepEqual(labelIds(m), [0, ...classes], id);
      const hist = new Map<number, number>();
      for (const v of m.data) hist.set(v, (hist.get(v) ?? 0) + 1);
      assert.ok((hist.get(255) ?? 0) > 1000, `${id}: void pixels present`);
      // Void is a thin band on object boundaries: nearly every void pixel has a labelled pixel within 6 px.
      const W = m.width;
      let v = 0;
      let near = 0;
      for (let y = 0; y < m.height; y++) {
        for (let x = 0; x < W; x++) {
          if (m.data[y * W + x] !== 255) continue;
          v++;
          let ok = false;
          for (let d = -6; d <= 6 && !ok; d++) {
            if ((x + d >= 0 && x + d < W && m.data[y * W + x + d] !== 255) || (y + d >= 0 && y + d < m.height && m.data[(y + d) * W + x] !== 255)) ok = true;
          }
          if (ok) near++;
        }
      }
      assert.ok(near / v > 0.95, `${id}: ${near}/${v} void pixels near a labelled one`);
    }
  });

  it('matches sharp RGB decoding of a real mask mapped through the VOC palette', async function () {
    const file = path.join(masks(), 'vainf_294.png');
    const buf = fs.readFileSync(file);
    const m = await decodeLabelImage(buf);
    const rgb = await sharp(buf).removeAlpha().raw().toBuffer();
    const pal = vocPalette(256);
    for (let i = 0; i < m.data.length; i += 97) assert.deepEqual([...rgb.subarray(i * 3, i * 3 + 3)], pal[m.data[i]]);
  });
});
