/**
 * A minimal WebAssembly binary emitter: LEB128 numbers, the instructions the CRF's SIMD kernels
 * use, one-memory modules and a counted loop. No compiler toolchain, no binary blob: the kernels
 * (simd.ts) are written with these and assembled at run time.
 */

/** wasm32's largest memory: 65536 pages of 64 KiB (4 GiB). */
export const MAX_PAGES = 65536;

export type Bytes = number[];

export function u32(v: number): Bytes {
  const out: Bytes = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

export function s32(v: number): Bytes {
  const out: Bytes = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

export function f32(v: number): Bytes {
  const b = new Uint8Array(new Float32Array([v]).buffer);
  return [...b];
}

export function vec(items: Bytes[]): Bytes {
  return [...u32(items.length), ...items.flat()];
}

export function name(s: string): Bytes {
  return vec([...Buffer.from(s, 'utf8')].map((x) => [x]));
}

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

export const simd = (code: number, ...imm: number[]): Bytes => [0xfd, ...u32(code), ...imm];
export const mem = (align: number, offset: number): Bytes => [align, ...u32(offset)];

/** Instructions (only those used below). */
export const W = {
  get: (i: number): Bytes => [0x20, ...u32(i)],
  set: (i: number): Bytes => [0x21, ...u32(i)],
  tee: (i: number): Bytes => [0x22, ...u32(i)],
  i32: (v: number): Bytes => [0x41, ...s32(v)],
  f32: (v: number): Bytes => [0x43, ...f32(v)],
  add: [0x6a],
  sub: [0x6b],
  mul: [0x6c],
  geS: [0x4e],
  eqz: [0x45],
  i32load: (off = 0): Bytes => [0x28, ...mem(2, off)],
  f32load: (off = 0): Bytes => [0x2a, ...mem(2, off)],
  fadd: [0x92],
  fmul: [0x94],
  fdiv: [0x95],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  br: (d: number): Bytes => [0x0c, ...u32(d)],
  brIf: (d: number): Bytes => [0x0d, ...u32(d)],
  end: [0x0b],
  // SIMD (unaligned v128 accesses are fine on x86 and ARM)
  vload: (off = 0): Bytes => simd(0x00, ...mem(0, off)),
  vstore: (off = 0): Bytes => simd(0x0b, ...mem(0, off)),
  fsplat: simd(0x13),
  isplat: simd(0x11),
  lane: (l: number): Bytes => simd(0x1f, l),
  vadd: simd(0xe4),
  vsub: simd(0xe5),
  vmul: simd(0xe6),
  vmax: simd(0xe9),
  vnearest: simd(0x6a),
  truncSat: simd(0xf8),
  iadd: simd(0xae),
  ishl: simd(0xab),
};

export interface Fn {
  name: string;
  params: number[];
  /** Local declarations after the params: [count, type] pairs. */
  locals: [number, number][];
  code: Bytes;
}

export function moduleBytes(fns: Fn[], pages: number, maxPages: number): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: Bytes): Bytes => [id, ...u32(body.length), ...body];
  const types = vec(fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec([])]));
  const imports = vec([[...name('env'), ...name('mem'), 0x02, 0x03, ...u32(pages), ...u32(maxPages)]]);
  const funcs = vec(fns.map((_, i) => u32(i)));
  const exports = vec(fns.map((f, i) => [...name(f.name), 0x00, ...u32(i)]));
  const bodies = vec(fns.map((f) => {
    const body = [...vec(f.locals.map(([n, t]) => [...u32(n), t])), ...f.code, ...W.end];
    return [...u32(body.length), ...body];
  }));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types), ...section(2, imports), ...section(3, funcs), ...section(7, exports), ...section(10, bodies)]);
}

/** for (p = from; p < to; p++) { body } with p in local `p`. */
export function forLoop(p: number, from: Bytes, to: Bytes, body: Bytes): Bytes {
  return [...from, ...W.set(p), ...W.block, ...W.loop,
    ...W.get(p), ...to, ...W.geS, ...W.brIf(1),
    ...body,
    ...W.get(p), ...W.i32(1), ...W.add, ...W.set(p), ...W.br(0), ...W.end, ...W.end];
}
