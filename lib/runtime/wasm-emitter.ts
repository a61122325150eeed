/**
 * A minimal WebAssembly binary emitter: LEB128 numbers, the instructions our SIMD kernels
 * use, one-memory modules and a counted loop. No compiler toolchain, no binary blob: the kernels
 * (the CRF's simd.ts, lattice-wasm.ts) are written with these and assembled at run time.
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

/** Signed LEB128 of a 64-bit integer. */
export function s64(v: bigint): Bytes {
  const out: Bytes = [];
  v = BigInt.asIntN(64, v);
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

export function f64(v: number): Bytes {
  const b = new Uint8Array(new Float64Array([v]).buffer);
  return [...b];
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
export const I64 = 0x7e;
export const F64 = 0x7c;

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
  // scalar i32 / i64 / f64, for the lattice construction (lattice-wasm.ts)
  i64: (v: bigint): Bytes => [0x42, ...s64(v)],
  f64: (v: number): Bytes => [0x44, ...f64(v)],
  and: [0x71],
  or: [0x72],
  shl: [0x74],
  shrU: [0x76],
  eq: [0x46],
  ne: [0x47],
  ltS: [0x48],
  gtS: [0x4a],
  leS: [0x4c],
  remU: [0x70],
  select: [0x1b],
  if: [0x04, 0x40],
  else: [0x05],
  return: [0x0f],
  i32store: (off = 0): Bytes => [0x36, ...mem(2, off)],
  f32store: (off = 0): Bytes => [0x38, ...mem(2, off)],
  i64load: (off = 0): Bytes => [0x29, ...mem(3, off)],
  i64store: (off = 0): Bytes => [0x37, ...mem(3, off)],
  f64load: (off = 0): Bytes => [0x2b, ...mem(3, off)],
  f64store: (off = 0): Bytes => [0x39, ...mem(3, off)],
  i64eqz: [0x50],
  i64eq: [0x51],
  i64add: [0x7c],
  i64sub: [0x7d],
  i64mul: [0x7e],
  i64remU: [0x82],
  i64shrU: [0x88],
  i64shl: [0x86],
  i64or: [0x84],
  i64ltS: [0x53],
  i64gtS: [0x55],
  wrap: [0xa7],
  extendS: [0xac],
  extendU: [0xad],
  i64truncF64: [0xb0],
  i32truncF64: [0xaa],
  f64fromI32: [0xb7],
  f64fromI64: [0xb9],
  promote: [0xbb],
  demote: [0xb6],
  dadd: [0xa0],
  dsub: [0xa1],
  dmul: [0xa2],
  ddiv: [0xa3],
  dmin: [0xa4],
  dmax: [0xa5],
  dceil: [0x9b],
  dfloor: [0x9c],
  dnearest: [0x9e],
  dsqrt: [0x9f],
  dlt: [0x63],
  dgt: [0x64],
  dne: [0x62],
  fsub: [0x93],
  fmin: [0x96],
  fmax: [0x97],
  fnearest: [0x90],
  i32truncF32: [0xa8],
  f32fromBits: [0xbe],
  ltU: [0x49],
  geU: [0x4f],
  gtU: [0x4b],
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
  vmin: simd(0xe8),
  vdiv: simd(0xe7),
  vsqrt: simd(0xe3),
  vlt: simd(0x43),
  vgt: simd(0x44),
  vand: simd(0x4e),
  /** v128.load32_splat: one f32 from memory into every lane. */
  vload32Splat: (off = 0): Bytes => simd(0x09, ...mem(2, off)),
  /** f32.const 0 splatted. */
  vzero: [0x43, 0, 0, 0, 0, ...simd(0x13)],
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
  /** Result types (none by default). */
  results?: number[];
}

/** A module of `fns` importing env.mem: a shared memory by default, else a plain one (as tfjs-wasm's). */
export function moduleBytes(fns: Fn[], pages: number, maxPages: number, shared = true): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: Bytes): Bytes => [id, ...u32(body.length), ...body];
  const types = vec(fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec((f.results ?? []).map((r) => [r]))]));
  const imports = vec([[...name('env'), ...name('mem'), 0x02, shared ? 0x03 : 0x01, ...u32(pages), ...u32(maxPages)]]);
  const funcs = vec(fns.map((_, i) => u32(i)));
  const exportSection = vec(fns.map((f, i) => [...name(f.name), 0x00, ...u32(i)]));
  const bodies = vec(fns.map((f) => {
    const body = [...vec(f.locals.map(([n, t]) => [...u32(n), t])), ...f.code, ...W.end];
    return [...u32(body.length), ...body];
  }));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types), ...section(2, imports), ...section(3, funcs), ...section(7, exportSection), ...section(10, bodies)]);
}

/** for (p = from; p < to; p++) { body } with p in local `p`. */
export function forLoop(p: number, from: Bytes, to: Bytes, body: Bytes): Bytes {
  return [...from, ...W.set(p), ...W.block, ...W.loop,
    ...W.get(p), ...to, ...W.geS, ...W.brIf(1),
    ...body,
    ...W.get(p), ...W.i32(1), ...W.add, ...W.set(p), ...W.br(0), ...W.end, ...W.end];
}
