/**
 * The permutohedral lattice's construction (lattice.ts) as WebAssembly, emitted here for the
 * feature dimension d (every loop over coordinates unrolled), run on one WebAssembly memory kept
 * per thread. It computes exactly what the JavaScript construction computes, in the same order
 * and in f64 where that one does (the same vertices, numbered alike, bit-identical weights; the
 * tests compare the two), only faster:
 * - a lattice key (d coordinates, all congruent to the vertex's remainder k mod d+1) is packed
 *   into one integer, k + (d+1) * sum_i a_i * stride_i with a_i = (c_i - k) / (d+1) shifted to
 *   be >= 0, from bounds of the elevated features (one pass first). A neighbour's key is then
 *   the key plus one of two constants per lattice direction, and keys compare as one i64;
 * - where the packed key space is small (position-only kernels) a vertex's index is read
 *   directly from a table indexed by the key: no hashing, no probing, nearby pixels touch
 *   nearby entries; otherwise an open-addressing table of 16-byte slots (key + 1, index) with
 *   a multiplicative hash and linear probing;
 * - the blur's neighbour chains and the symmetric normalisation (the lattice's response to all
 *   ones) follow in the same memory.
 * Where the key does not fit (d > 7, or a key space past 2^62) the JavaScript construction runs.
 */
import { Bytes, F64, Fn, I32, I64, MAX_PAGES, W, forLoop, moduleBytes } from '../runtime/wasm-emitter';
import type { LatticeGeometry } from './lattice';
import type { Arena } from './arena';
import type { RawImage } from '../contract';

/** Largest d handled here (the remainder k sits in the key's low part; the CRF uses 2 and 5). */
export const MAX_WASM_DIM = 7;

// Scratch block (bytes from its start): per-image constants in, bounds and counts out.
const S_M = 0; // i32 vertices so far
const S_AMIN = 8; // i64 [d] lowest a_i
const S_STRIDE = 72; // i64 [d]
const S_EMIN = 136; // f64 [d] elevated coordinate bounds
const S_EMAX = 200; // f64 [d]
const S_BARY = 264; // f64 [d + 2]
const S_DA = 336; // i64 [d + 1] neighbour key offsets for remainders 1..d
const S_DB = 400; // i64 [d + 1] ... for remainder 0
const S_NEAR = 464; // i32 near, steps
const S_CHAIN = 472; // i32 [d + 2] chain starts
const S_SINK = 512; // i64: keeps the touching loads alive
const SCRATCH_BYTES = 528;

const GOLDEN = BigInt.asIntN(64, 0x9e3779b97f4a7c15n);

/** Locals after the params, one declaration each. */
class Locals {
  private readonly types: number[] = [];
  constructor(private readonly params: number) {}
  add(type: number): number {
    this.types.push(type);
    return this.params + this.types.length - 1;
  }
  many(count: number, type: number): number[] {
    return Array.from({ length: count }, () => this.add(type));
  }
  decl(): [number, number][] {
    return this.types.map((t) => [1, t]);
  }
}

const { get, set, tee } = W;
const inc = (l: number, by = 1): Bytes => [...get(l), ...W.i32(by), ...W.add, ...set(l)];
/** while (cond) body, cond evaluated first. */
const whileLoop = (cond: Bytes, body: Bytes): Bytes => [...W.block, ...W.loop, ...cond, ...W.eqz, ...W.brIf(1), ...body, ...W.br(0), ...W.end, ...W.end];

/** Elevates the point at feature address `f` into e[0..d] (as lattice.ts does, f64). */
function elevate(d: number, f: number, e: number[], sm: number, cf: number): Bytes {
  const d1 = d + 1;
  const invStd = Math.sqrt(2 / 3) * d1;
  const out: Bytes = [...W.f64(0), ...set(sm)];
  for (let i = d; i > 0; i--) {
    const scale = invStd / Math.sqrt(i * (i + 1));
    out.push(...get(f), ...W.f32load((i - 1) * 4), ...W.promote, ...W.f64(scale), ...W.dmul, ...set(cf));
    out.push(...get(sm), ...W.f64(i), ...get(cf), ...W.dmul, ...W.dsub, ...set(e[i]));
    out.push(...get(sm), ...get(cf), ...W.dadd, ...set(sm));
  }
  out.push(...get(sm), ...set(e[0]));
  return out;
}

/** bounds(sc, feat, n): min and max of each elevated coordinate i < d into the scratch. */
function boundsFn(d: number): Fn {
  const [sc, feat, n] = [0, 1, 2];
  const L = new Locals(3);
  const p = L.add(I32);
  const f = L.add(I32);
  const e = L.many(d + 1, F64);
  const lo = L.many(d, F64);
  const hi = L.many(d, F64);
  const sm = L.add(F64);
  const cf = L.add(F64);
  const code: Bytes = [];
  for (let i = 0; i < d; i++) code.push(...W.f64(Infinity), ...set(lo[i]), ...W.f64(-Infinity), ...set(hi[i]));
  const body: Bytes = [...get(feat), ...get(p), ...W.i32(d * 4), ...W.mul, ...W.add, ...set(f), ...elevate(d, f, e, sm, cf)];
  for (let i = 0; i < d; i++) {
    body.push(...get(lo[i]), ...get(e[i]), ...W.dmin, ...set(lo[i]), ...get(hi[i]), ...get(e[i]), ...W.dmax, ...set(hi[i]));
  }
  code.push(...forLoop(p, W.i32(0), get(n), body));
  for (let i = 0; i < d; i++) {
    code.push(...get(sc), ...get(lo[i]), ...W.f64store(S_EMIN + 8 * i), ...get(sc), ...get(hi[i]), ...W.f64store(S_EMAX + 8 * i));
  }
  return { name: 'bounds', params: [I32, I32, I32], locals: L.decl(), code };
}

interface TableAccess {
  /** Params of the functions that touch the table (after their own). */
  hashed: boolean;
  table: number;
  shift: number; // i64 local (hashed)
  mask: number; // i32 local (hashed)
}

/**
 * Loads `key`'s home slot into the sink: touching the slots of several keys before probing any
 * lets their cache misses overlap (the probes depend on the loads; these loads do not).
 */
function touch(t: TableAccess, key: number, sink: number): Bytes {
  const slot: Bytes = t.hashed
    ? [...get(t.table), ...get(key), ...W.i64(GOLDEN), ...W.i64mul, ...get(t.shift), ...W.i64shrU, ...W.wrap, ...W.i32(4), ...W.shl, ...W.add, ...W.i64load(0)]
    : [...get(t.table), ...get(key), ...W.wrap, ...W.i32(2), ...W.shl, ...W.add, ...W.i32load(0), ...W.extendU];
  return [...get(sink), ...slot, ...W.i64or, ...set(sink)];
}

/**
 * Looks `key` up: idx = its vertex index, or, when absent, a new index (insert) or -1 (find).
 * Inserting appends the key to the dense keys array and counts m up.
 */
function lookup(t: TableAccess, key: number, idx: number, a: number, sk: number, h: number, insert: { keys: number; m: number } | null): Bytes {
  if (!t.hashed) {
    const code: Bytes = [...get(t.table), ...get(key), ...W.wrap, ...W.i32(2), ...W.shl, ...W.add, ...set(a)];
    if (!insert) return [...code, ...get(a), ...W.i32load(0), ...W.i32(1), ...W.sub, ...set(idx)];
    return [...code,
      ...get(a), ...W.i32load(0), ...tee(idx), ...W.eqz, ...W.if,
      ...get(a), ...get(insert.m), ...W.i32(1), ...W.add, ...W.i32store(0),
      ...get(insert.keys), ...get(insert.m), ...W.i32(3), ...W.shl, ...W.add, ...get(key), ...W.i64store(0),
      ...get(insert.m), ...set(idx), ...inc(insert.m),
      ...W.else, ...get(idx), ...W.i32(1), ...W.sub, ...set(idx), ...W.end];
  }
  const onEmpty: Bytes = insert
    ? [...get(a), ...get(key), ...W.i64(1n), ...W.i64add, ...W.i64store(0), ...get(a), ...get(insert.m), ...W.i32store(8),
      ...get(insert.keys), ...get(insert.m), ...W.i32(3), ...W.shl, ...W.add, ...get(key), ...W.i64store(0),
      ...get(insert.m), ...set(idx), ...inc(insert.m)]
    : [...W.i32(-1), ...set(idx)];
  return [
    ...get(key), ...W.i64(GOLDEN), ...W.i64mul, ...get(t.shift), ...W.i64shrU, ...W.wrap, ...set(h),
    ...W.block, ...W.loop,
    ...get(t.table), ...get(h), ...W.i32(4), ...W.shl, ...W.add, ...tee(a), ...W.i64load(0), ...tee(sk), ...W.i64eqz,
    ...W.if, ...onEmpty, ...W.br(2), ...W.end,
    ...get(sk), ...get(key), ...W.i64(1n), ...W.i64add, ...W.i64eq,
    ...W.if, ...get(a), ...W.i32load(8), ...set(idx), ...W.br(2), ...W.end,
    ...get(h), ...W.i32(1), ...W.add, ...get(t.mask), ...W.and, ...set(h),
    ...W.br(0), ...W.end, ...W.end,
  ];
}

/**
 * simplex(sc, feat, p0, n, offs, wts, keys, table[, shift, mask]) -> next point: for points
 * p0.. the enclosing simplex, barycentric weights and vertex indices (+1), inserting new
 * vertices; a hashed table returns early once it is half full (the caller grows it and goes on).
 */
function simplexFn(d: number, hashed: boolean): Fn {
  const d1 = d + 1;
  const [sc, feat, p0, n, offs, wts, keys, table, shift, mask] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const params = hashed ? [I32, I32, I32, I32, I32, I32, I32, I32, I64, I32] : [I32, I32, I32, I32, I32, I32, I32, I32];
  const L = new Locals(params.length);
  const p = L.add(I32);
  const f = L.add(I32);
  const o = L.add(I32);
  const m = L.add(I32);
  const have = L.add(I32);
  const sumI = L.add(I32);
  const c = L.add(I32);
  const idx = L.add(I32);
  const a = L.add(I32);
  const h = L.add(I32);
  const e = L.many(d1, F64);
  const r = L.many(d1, F64);
  const k = L.many(d1, I32);
  const pr = L.many(d1, F64);
  const pk = L.many(d1, I32);
  const amin = L.many(d, I64);
  const stride = L.many(d, I64);
  const sm = L.add(F64);
  const cf = L.add(F64);
  const v = L.add(F64);
  const up = L.add(F64);
  const dn = L.add(F64);
  const sum = L.add(F64);
  const di = L.add(F64);
  const base = L.add(I64);
  const sk = L.add(I64);
  const sink = L.add(I64);
  const vkey = L.many(d1, I64);
  const t: TableAccess = { hashed, table, shift, mask };

  const code: Bytes = [...get(sc), ...W.i32load(S_M), ...set(m), ...W.i32(0), ...set(have), ...W.i64(0n), ...set(sink)];
  for (let i = 0; i < d; i++) {
    code.push(...get(sc), ...W.i64load(S_AMIN + 8 * i), ...set(amin[i]), ...get(sc), ...W.i64load(S_STRIDE + 8 * i), ...set(stride[i]));
  }
  const body: Bytes = [...get(feat), ...get(p), ...W.i32(d * 4), ...W.mul, ...W.add, ...set(f), ...elevate(d, f, e, sm, cf)];
  // the nearest remainder-0 point, coordinate-wise
  body.push(...W.f64(0), ...set(sum));
  for (let i = 0; i <= d; i++) {
    body.push(
      ...get(e[i]), ...W.f64(1 / d1), ...W.dmul, ...set(v),
      ...get(v), ...W.dceil, ...W.f64(d1), ...W.dmul, ...set(up),
      ...get(v), ...W.dfloor, ...W.f64(d1), ...W.dmul, ...set(dn),
      ...get(up), ...get(dn), ...get(up), ...get(e[i]), ...W.dsub, ...get(e[i]), ...get(dn), ...W.dsub, ...W.dlt, ...W.select, ...tee(r[i]),
      ...get(sum), ...W.dadd, ...set(sum),
    );
  }
  body.push(...get(sum), ...W.f64(d1), ...W.ddiv, ...W.i32truncF64, ...set(sumI));
  // ranks of the residuals
  for (let i = 0; i <= d; i++) body.push(...W.i32(0), ...set(k[i]));
  for (let i = 0; i < d; i++) {
    body.push(...get(e[i]), ...get(r[i]), ...W.dsub, ...set(di));
    for (let j = i + 1; j <= d; j++) {
      body.push(...get(di), ...get(e[j]), ...get(r[j]), ...W.dsub, ...W.dlt, ...set(c),
        ...get(k[i]), ...get(c), ...W.add, ...set(k[i]),
        ...get(k[j]), ...W.i32(1), ...W.add, ...get(c), ...W.sub, ...set(k[j]));
    }
  }
  // back onto the plane
  const pos: Bytes = [];
  const neg: Bytes = [];
  for (let i = 0; i <= d; i++) {
    pos.push(...get(k[i]), ...W.i32(d1), ...get(sumI), ...W.sub, ...W.geS, ...W.if,
      ...get(r[i]), ...W.f64(d1), ...W.dsub, ...set(r[i]), ...get(k[i]), ...W.i32(d1), ...W.sub, ...set(k[i]), ...W.end,
      ...get(k[i]), ...get(sumI), ...W.add, ...set(k[i]));
    neg.push(...get(k[i]), ...W.i32(0), ...get(sumI), ...W.sub, ...W.ltS, ...W.if,
      ...get(r[i]), ...W.f64(d1), ...W.dadd, ...set(r[i]), ...get(k[i]), ...W.i32(d1), ...W.add, ...set(k[i]), ...W.end,
      ...get(k[i]), ...get(sumI), ...W.add, ...set(k[i]));
  }
  body.push(...get(sumI), ...W.i32(0), ...W.gtS, ...W.if, ...pos, ...W.else,
    ...get(sumI), ...W.i32(0), ...W.ltS, ...W.if, ...neg, ...W.end, ...W.end);
  // barycentric weights
  for (let b = 0; b <= d1; b++) body.push(...get(sc), ...W.f64(0), ...W.f64store(S_BARY + 8 * b));
  for (let i = 0; i <= d; i++) {
    body.push(
      ...get(e[i]), ...get(r[i]), ...W.dsub, ...W.f64(1 / d1), ...W.dmul, ...set(v),
      ...get(sc), ...W.i32(d), ...get(k[i]), ...W.sub, ...W.i32(3), ...W.shl, ...W.add, ...set(a),
      ...get(a), ...get(a), ...W.f64load(S_BARY), ...get(v), ...W.dadd, ...W.f64store(S_BARY),
      ...get(a), ...get(a), ...W.f64load(S_BARY + 8), ...get(v), ...W.dsub, ...W.f64store(S_BARY + 8),
    );
  }
  body.push(...get(sc), ...get(sc), ...W.f64load(S_BARY), ...W.f64(1), ...get(sc), ...W.f64load(S_BARY + 8 * d1), ...W.dadd, ...W.dadd, ...W.f64store(S_BARY));
  body.push(...get(p), ...W.i32(d1 * 4), ...W.mul, ...set(o));
  for (let q = 0; q <= d; q++) body.push(...get(wts), ...get(o), ...W.add, ...get(sc), ...W.f64load(S_BARY + 8 * q), ...W.demote, ...W.f32store(q * 4));
  // the previous point's simplex: its vertex indices as they are
  const same: Bytes = [...get(have)];
  for (let i = 0; i <= d; i++) {
    same.push(...get(r[i]), ...get(pr[i]), ...W.dne, ...W.eqz, ...W.and, ...get(k[i]), ...get(pk[i]), ...W.eq, ...W.and);
  }
  // (the memarg offset is unsigned: address the previous point's row as o - (d+1)*4 first)
  const copy: Bytes = [];
  for (let q = 0; q <= d; q++) {
    copy.push(...get(offs), ...get(o), ...W.add, ...get(offs), ...get(o), ...W.add, ...W.i32(d1 * 4), ...W.sub, ...W.i32load(q * 4), ...W.i32store(q * 4));
  }
  const fresh: Bytes = [];
  for (let i = 0; i <= d; i++) fresh.push(...get(r[i]), ...set(pr[i]), ...get(k[i]), ...set(pk[i]));
  // packed key of vertex 0: sum_i (r_i / (d+1) - amin_i) * stride_i
  fresh.push(...W.i64(0n), ...set(base));
  for (let i = 0; i < d; i++) {
    fresh.push(...get(r[i]), ...W.f64(1 / d1), ...W.dmul, ...W.dnearest, ...W.i64truncF64, ...get(amin[i]), ...W.i64sub, ...get(stride[i]), ...W.i64mul, ...get(base), ...W.i64add, ...set(base));
  }
  for (let q = 0; q <= d; q++) {
    // vertex q: coordinate i is r_i + q, less d+1 where the rank exceeds d - q
    fresh.push(...get(base));
    for (let i = 0; i < d && q > 0; i++) {
      fresh.push(...get(stride[i]), ...W.i64(0n), ...get(k[i]), ...W.i32(d - q), ...W.gtS, ...W.select, ...W.i64sub);
    }
    fresh.push(...W.i64(BigInt(d1)), ...W.i64mul, ...W.i64(BigInt(q)), ...W.i64add, ...set(vkey[q]));
  }
  for (let q = 0; q <= d; q++) fresh.push(...touch(t, vkey[q], sink));
  for (let q = 0; q <= d; q++) {
    fresh.push(...lookup(t, vkey[q], idx, a, sk, h, { keys, m }));
    fresh.push(...get(offs), ...get(o), ...W.add, ...get(idx), ...W.i32(1), ...W.add, ...W.i32store(q * 4));
  }
  body.push(...same, ...W.if, ...copy, ...W.else, ...fresh, ...W.end, ...W.i32(1), ...set(have));
  if (hashed) {
    // half full: hand back to grow the table
    body.push(...get(m), ...W.i32(1), ...W.shl, ...get(mask), ...W.gtS, ...W.if,
      ...get(sc), ...get(m), ...W.i32store(S_M), ...get(sc), ...get(sink), ...W.i64store(S_SINK), ...get(p), ...W.i32(1), ...W.add, ...W.return, ...W.end);
  }
  code.push(...forLoop(p, get(p0), get(n), body));
  code.push(...get(sc), ...get(m), ...W.i32store(S_M), ...get(sc), ...get(sink), ...W.i64store(S_SINK), ...get(n));
  return { name: hashed ? 'simplexH' : 'simplexD', params, locals: L.decl(), code, results: [I32] };
}

/** rehash(keys, m, table, shift, mask): inserts the m keys into a cleared table. */
function rehashFn(): Fn {
  const [keys, m, table, shift, mask] = [0, 1, 2, 3, 4];
  const L = new Locals(5);
  const i = L.add(I32);
  const h = L.add(I32);
  const a = L.add(I32);
  const key = L.add(I64);
  const body: Bytes = [
    ...get(keys), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...W.i64load(0), ...set(key),
    ...get(key), ...W.i64(GOLDEN), ...W.i64mul, ...get(shift), ...W.i64shrU, ...W.wrap, ...set(h),
    ...whileLoop([...get(table), ...get(h), ...W.i32(4), ...W.shl, ...W.add, ...tee(a), ...W.i64load(0), ...W.i64eqz, ...W.eqz],
      [...get(h), ...W.i32(1), ...W.add, ...get(mask), ...W.and, ...set(h)]),
    ...get(a), ...get(key), ...W.i64(1n), ...W.i64add, ...W.i64store(0), ...get(a), ...get(i), ...W.i32store(8),
  ];
  return { name: 'rehash', params: [I32, I32, I32, I64, I32], locals: L.decl(), code: forLoop(i, W.i32(0), get(m), body) };
}

/**
 * neighbours(sc, keys, m, blur, table[, shift, mask]): for each vertex i and direction j, its
 * neighbour n1 (key + offset); found, blur[j][i].n1 = n1 + 1 and blur[j][n1].n2 = i + 1.
 */
function neighboursFn(d: number, hashed: boolean): Fn {
  const d1 = d + 1;
  const [sc, keys, m, blur, table, shift, mask] = [0, 1, 2, 3, 4, 5, 6];
  const params = hashed ? [I32, I32, I32, I32, I32, I64, I32] : [I32, I32, I32, I32, I32];
  const L = new Locals(params.length);
  const i = L.add(I32);
  const zero = L.add(I32);
  const found = L.add(I32);
  const a = L.add(I32);
  const h = L.add(I32);
  const bj = L.many(d1, I32);
  const dA = L.many(d1, I64);
  const dB = L.many(d1, I64);
  const key = L.add(I64);
  const nk = L.many(d1, I64);
  const sk = L.add(I64);
  const sink = L.add(I64);
  const t: TableAccess = { hashed, table, shift, mask };
  const code: Bytes = [...W.i64(0n), ...set(sink)];
  for (let j = 0; j <= d; j++) {
    code.push(...get(blur), ...get(m), ...W.i32(8 * j), ...W.mul, ...W.add, ...set(bj[j]),
      ...get(sc), ...W.i64load(S_DA + 8 * j), ...set(dA[j]), ...get(sc), ...W.i64load(S_DB + 8 * j), ...set(dB[j]));
  }
  const body: Bytes = [
    ...get(keys), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...W.i64load(0), ...tee(key),
    ...W.i64(BigInt(d1)), ...W.i64remU, ...W.i64eqz, ...set(zero),
  ];
  for (let j = 0; j <= d; j++) body.push(...get(key), ...get(dB[j]), ...get(dA[j]), ...get(zero), ...W.select, ...W.i64add, ...set(nk[j]));
  for (let j = 0; j <= d; j++) body.push(...touch(t, nk[j], sink));
  for (let j = 0; j <= d; j++) {
    body.push(...lookup(t, nk[j], found, a, sk, h, null));
    body.push(...get(found), ...W.i32(0), ...W.geS, ...W.if,
      ...get(bj[j]), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...get(found), ...W.i32(1), ...W.add, ...W.i32store(0),
      ...get(bj[j]), ...get(found), ...W.i32(3), ...W.shl, ...W.add, ...get(i), ...W.i32(1), ...W.add, ...W.i32store(4),
      ...W.end);
  }
  code.push(...forLoop(i, W.i32(0), get(m), body), ...get(sc), ...get(sink), ...W.i64store(S_SINK));
  return { name: hashed ? 'neighboursH' : 'neighboursD', params, locals: L.decl(), code };
}

/** near(sc, blur, m): how many n2 links there are (steps) and how many lie within 4096 rows (near). */
function nearFn(d: number): Fn {
  const [sc, blur, m] = [0, 1, 2];
  const L = new Locals(3);
  const i = L.add(I32);
  const bj = L.add(I32);
  const v = L.add(I32);
  const near = L.add(I32);
  const steps = L.add(I32);
  const code: Bytes = [...W.i32(0), ...set(near), ...W.i32(0), ...set(steps)];
  for (let j = 0; j <= d; j++) {
    code.push(...get(blur), ...get(m), ...W.i32(8 * j), ...W.mul, ...W.add, ...set(bj));
    code.push(...forLoop(i, W.i32(0), get(m), [
      ...get(bj), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...W.i32load(4), ...tee(v), ...W.if,
      ...inc(steps),
      // |v - 1 - i| <= 4096  <=>  (v - 1 - i + 4096) unsigned <= 8192
      ...get(near), ...get(v), ...W.i32(1), ...W.sub, ...get(i), ...W.sub, ...W.i32(4096), ...W.add, ...W.i32(8193), ...[0x49], ...W.add, ...set(near),
      ...W.end,
    ]));
  }
  code.push(...get(sc), ...get(near), ...W.i32store(S_NEAR), ...get(sc), ...get(steps), ...W.i32store(S_NEAR + 4));
  return { name: 'near', params: [I32, I32, I32], locals: L.decl(), code };
}

/** chainCount(blur, m) -> entries of the chains array (rows with a next neighbour, 2 per chain). */
function chainCountFn(d: number): Fn {
  const [blur, m] = [0, 1];
  const L = new Locals(2);
  const i = L.add(I32);
  const a = L.add(I32);
  const total = L.add(I32);
  const nx = L.add(I32);
  const code: Bytes = [...W.i32(0), ...set(total)];
  code.push(...forLoop(i, W.i32(0), [...get(m), ...W.i32(d + 1), ...W.mul], [
    ...get(blur), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...set(a),
    ...get(a), ...W.i32load(4), ...W.i32(0), ...W.ne, ...set(nx),
    ...get(total), ...get(nx), ...W.add, ...get(nx), ...get(a), ...W.i32load(0), ...W.eqz, ...W.and, ...W.i32(1), ...W.shl, ...W.add, ...set(total),
  ]));
  code.push(...get(total));
  return { name: 'chainCount', params: [I32, I32], locals: L.decl(), code, results: [I32] };
}

/** chainFill(sc, blur, m, chains): the chains along each direction, starts into the scratch. */
function chainFillFn(d: number): Fn {
  const [sc, blur, m, chains] = [0, 1, 2, 3];
  const L = new Locals(4);
  const i = L.add(I32);
  const t = L.add(I32);
  const v = L.add(I32);
  const bj = L.add(I32);
  const push = (val: Bytes): Bytes => [...get(chains), ...get(t), ...W.i32(2), ...W.shl, ...W.add, ...val, ...W.i32store(0), ...inc(t)];
  const code: Bytes = [...W.i32(0), ...set(t)];
  for (let j = 0; j <= d; j++) {
    code.push(...get(sc), ...get(t), ...W.i32store(S_CHAIN + 4 * j));
    code.push(...get(blur), ...get(m), ...W.i32(8 * j), ...W.mul, ...W.add, ...set(bj));
    code.push(...forLoop(i, W.i32(0), get(m), [
      // a chain starts at a vertex with a next but no previous neighbour
      ...get(bj), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...W.i32load(0), ...W.eqz,
      ...get(bj), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...W.i32load(4), ...W.i32(0), ...W.ne, ...W.and,
      ...W.if,
      ...get(i), ...W.i32(1), ...W.add, ...set(v),
      ...whileLoop(get(v), [...push(get(v)), ...get(bj), ...get(v), ...W.i32(1), ...W.sub, ...W.i32(3), ...W.shl, ...W.add, ...W.i32load(4), ...set(v)]),
      ...push(W.i32(0)),
      ...W.end,
    ]));
  }
  code.push(...get(sc), ...get(t), ...W.i32store(S_CHAIN + 4 * (d + 1)));
  return { name: 'chainFill', params: [I32, I32, I32, I32], locals: L.decl(), code };
}

/** splatOnes(count, offs, wts, values): values[offs[e]] += wts[e] for e < count (f64 sums, f32 stores). */
function splatOnesFn(): Fn {
  const [count, offs, wts, values] = [0, 1, 2, 3];
  const L = new Locals(4);
  const e = L.add(I32);
  const a = L.add(I32);
  const body: Bytes = [
    ...get(values), ...get(offs), ...get(e), ...W.i32(2), ...W.shl, ...W.add, ...W.i32load(0), ...W.i32(2), ...W.shl, ...W.add, ...tee(a),
    ...get(a), ...W.f32load(0), ...W.promote, ...get(wts), ...get(e), ...W.i32(2), ...W.shl, ...W.add, ...W.f32load(0), ...W.promote, ...W.dadd,
    ...W.demote, ...W.f32store(0),
  ];
  return { name: 'splatOnes', params: [I32, I32, I32, I32], locals: L.decl(), code: forLoop(e, W.i32(0), get(count), body) };
}

/** blurPairs1(bj, m, src, dst): dst_i = src_i + (src_n1 + src_n2) / 2 for rows 1..m (one channel). */
function blurPairs1Fn(): Fn {
  const [bj, m, src, dst] = [0, 1, 2, 3];
  const L = new Locals(4);
  const i = L.add(I32);
  const j = L.add(I32);
  const at = (base: number, row: Bytes): Bytes => [...get(base), ...row, ...W.i32(2), ...W.shl, ...W.add];
  const body: Bytes = [
    ...get(bj), ...get(i), ...W.i32(3), ...W.shl, ...W.add, ...W.i32(8), ...W.sub, ...set(j),
    ...at(dst, get(i)),
    ...at(src, get(i)), ...W.f32load(0), ...W.promote,
    ...W.f64(0.5), ...at(src, [...get(j), ...W.i32load(0)]), ...W.f32load(0), ...W.promote, ...at(src, [...get(j), ...W.i32load(4)]), ...W.f32load(0), ...W.promote, ...W.dadd, ...W.dmul,
    ...W.dadd, ...W.demote, ...W.f32store(0),
  ];
  return { name: 'blurPairs1', params: [I32, I32, I32, I32], locals: L.decl(), code: forLoop(i, W.i32(1), [...get(m), ...W.i32(1), ...W.add], body) };
}

/** blurChains1(chains, start, end, values): in place along chains (one channel). */
function blurChains1Fn(): Fn {
  const [chains, start, end, values] = [0, 1, 2, 3];
  const L = new Locals(4);
  const t = L.add(I32);
  const v = L.add(I32);
  const nx = L.add(I32);
  const a = L.add(I32);
  const prev = L.add(F64);
  const cur = L.add(F64);
  const next: Bytes = [...get(chains), ...get(t), ...W.i32(2), ...W.shl, ...W.add, ...W.i32load(0)];
  const code: Bytes = [
    ...get(start), ...set(t),
    ...whileLoop([...get(t), ...get(end), ...W.ltS], [
      ...next, ...set(v), ...inc(t), ...W.f64(0), ...set(prev),
      ...whileLoop(get(v), [
        ...next, ...set(nx), ...inc(t),
        ...get(values), ...get(v), ...W.i32(2), ...W.shl, ...W.add, ...tee(a), ...W.f32load(0), ...W.promote, ...set(cur),
        ...get(a), ...get(cur), ...W.f64(0.5), ...get(prev),
        ...get(values), ...get(nx), ...W.i32(2), ...W.shl, ...W.add, ...W.f32load(0), ...W.promote, ...W.dadd, ...W.dmul, ...W.dadd,
        ...W.demote, ...W.f32store(0),
        ...get(cur), ...set(prev), ...get(nx), ...set(v),
      ]),
    ]),
  ];
  return { name: 'blurChains1', params: [I32, I32, I32, I32], locals: L.decl(), code };
}

/**
 * normalise(n, offs, wts, values): deg_p = sum_k w_pk values[row_pk] (f32), then every weight of
 * p times 1 / sqrt(deg_p + 1e-20): the symmetric normalisation folded into the weights.
 */
function normaliseFn(d: number): Fn {
  const d1 = d + 1;
  const [n, offs, wts, values] = [0, 1, 2, 3];
  const L = new Locals(4);
  const p = L.add(I32);
  const o = L.add(I32);
  const w = L.add(I32);
  const s = L.add(F64);
  const body: Bytes = [...get(p), ...W.i32(d1 * 4), ...W.mul, ...tee(o), ...get(offs), ...W.add, ...set(o), ...get(p), ...W.i32(d1 * 4), ...W.mul, ...get(wts), ...W.add, ...set(w)];
  for (let k = 0; k <= d; k++) {
    body.push(...get(w), ...W.f32load(4 * k), ...W.promote, ...get(values), ...get(o), ...W.i32load(4 * k), ...W.i32(2), ...W.shl, ...W.add, ...W.f32load(0), ...W.promote, ...W.dmul);
    if (k > 0) body.push(...W.dadd);
  }
  body.push(...W.demote, ...W.promote, ...W.f64(1e-20), ...W.dadd, ...W.dsqrt, ...set(s), ...W.f64(1), ...get(s), ...W.ddiv, ...set(s));
  for (let k = 0; k <= d; k++) body.push(...get(w), ...get(w), ...W.f32load(4 * k), ...W.promote, ...get(s), ...W.dmul, ...W.demote, ...W.f32store(4 * k));
  return { name: 'normalise', params: [I32, I32, I32, I32], locals: L.decl(), code: forLoop(p, W.i32(0), get(n), body) };
}

/** featXY(feat, W, H, s): (x s, y s) per pixel, as smoothnessFeatures computes them (f64, f32 stores). */
function featXYFn(): Fn {
  const [feat, Wd, H, sp] = [0, 1, 2, 3];
  const L = new Locals(4);
  const x = L.add(I32);
  const y = L.add(I32);
  const a = L.add(I32);
  const code = [...get(feat), ...set(a), ...forLoop(y, W.i32(0), get(H), forLoop(x, W.i32(0), get(Wd), [
    ...get(a), ...get(x), ...W.f64fromI32, ...get(sp), ...W.dmul, ...W.demote, ...W.f32store(0),
    ...get(a), ...get(y), ...W.f64fromI32, ...get(sp), ...W.dmul, ...W.demote, ...W.f32store(4),
    ...get(a), ...W.i32(8), ...W.add, ...set(a),
  ]))];
  return { name: 'featXY', params: [I32, I32, I32, F64], locals: L.decl(), code };
}

/** featXYRGB(feat, img, W, H, sp, sc): (x sp, y sp, r sc, g sc, b sc), as appearanceFeatures computes them. */
function featXYRGBFn(): Fn {
  const [feat, img, Wd, H, sp, scl] = [0, 1, 2, 3, 4, 5];
  const L = new Locals(6);
  const x = L.add(I32);
  const y = L.add(I32);
  const a = L.add(I32);
  const b = L.add(I32);
  const colour = (c: number): Bytes => [...get(a), ...get(b), ...[0x2d, 0, c], ...W.f64fromI32, ...get(scl), ...W.dmul, ...W.demote, ...W.f32store(8 + 4 * c)];
  const code = [...get(feat), ...set(a), ...get(img), ...set(b), ...forLoop(y, W.i32(0), get(H), forLoop(x, W.i32(0), get(Wd), [
    ...get(a), ...get(x), ...W.f64fromI32, ...get(sp), ...W.dmul, ...W.demote, ...W.f32store(0),
    ...get(a), ...get(y), ...W.f64fromI32, ...get(sp), ...W.dmul, ...W.demote, ...W.f32store(4),
    ...colour(0), ...colour(1), ...colour(2),
    ...get(a), ...W.i32(20), ...W.add, ...set(a), ...get(b), ...W.i32(3), ...W.add, ...set(b),
  ]))];
  return { name: 'featXYRGB', params: [I32, I32, I32, I32, F64, F64], locals: L.decl(), code };
}

interface BuilderExports {
  featXY(feat: number, width: number, height: number, s: number): void;
  featXYRGB(feat: number, img: number, width: number, height: number, sp: number, sc: number): void;
  bounds(sc: number, feat: number, n: number): void;
  simplexH(sc: number, feat: number, p0: number, n: number, offs: number, wts: number, keys: number, table: number, shift: bigint, mask: number): number;
  simplexD(sc: number, feat: number, p0: number, n: number, offs: number, wts: number, keys: number, table: number): number;
  rehash(keys: number, m: number, table: number, shift: bigint, mask: number): void;
  neighboursH(sc: number, keys: number, m: number, blur: number, table: number, shift: bigint, mask: number): void;
  neighboursD(sc: number, keys: number, m: number, blur: number, table: number): void;
  near(sc: number, blur: number, m: number): void;
  chainCount(blur: number, m: number): number;
  chainFill(sc: number, blur: number, m: number, chains: number): void;
  splatOnes(count: number, offs: number, wts: number, values: number): void;
  blurPairs1(bj: number, m: number, src: number, dst: number): void;
  blurChains1(chains: number, start: number, end: number, values: number): void;
  normalise(n: number, offs: number, wts: number, values: number): void;
}

const modules = new Map<number, WebAssembly.Module>();

function builderModule(d: number): WebAssembly.Module {
  let mod = modules.get(d);
  if (!mod) {
    const fns = [boundsFn(d), simplexFn(d, true), simplexFn(d, false), rehashFn(), neighboursFn(d, true), neighboursFn(d, false),
      nearFn(d), chainCountFn(d), chainFillFn(d), splatOnesFn(), blurPairs1Fn(), blurChains1Fn(), normaliseFn(d), featXYFn(), featXYRGBFn()];
    mod = new WebAssembly.Module(moduleBytes(fns, 1, MAX_PAGES));
    modules.set(d, mod);
  }
  return mod;
}

/** This thread's builder memory (kept between runs, like the arena), and instances per memory and d. */
let memory: WebAssembly.Memory | undefined;
const instances = new WeakMap<WebAssembly.Memory, Map<number, BuilderExports>>();

function ensureMemory(bytes: number): WebAssembly.Memory {
  const pages = Math.ceil(bytes / 65536);
  if (pages > MAX_PAGES) throw new RangeError('lattice construction needs more than 4 GiB');
  if (!memory) {
    memory = new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
  } else if (memory.buffer.byteLength < pages * 65536) {
    memory.grow(pages - memory.buffer.byteLength / 65536);
  }
  return memory;
}

function builder(d: number, mem: WebAssembly.Memory): BuilderExports {
  let byD = instances.get(mem);
  if (!byD) {
    byD = new Map();
    instances.set(mem, byD);
  }
  let ex = byD.get(d);
  if (!ex) {
    ex = new WebAssembly.Instance(builderModule(d), { env: { mem } }).exports as unknown as BuilderExports;
    byD.set(d, ex);
  }
  return ex;
}

/** Lets go of the builder's memory (releaseCrfMemory). */
export function releaseLatticeBuilder(): void {
  memory = undefined;
}

const align = (v: number): number => (v + 15) & ~15;

function nextPow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

/** Table layout for the packed keys, from the elevated bounds; undefined where a key does not fit. */
interface Packing {
  amin: bigint[];
  stride: bigint[];
  /** Key space size (d+1) * prod R_i. */
  space: bigint;
}

function packing(d: number, emin: Float64Array, emax: Float64Array): Packing | undefined {
  const d1 = d + 1;
  const amin: bigint[] = [];
  const stride: bigint[] = [];
  let span = 1n;
  for (let i = 0; i < d; i++) {
    if (!Number.isFinite(emin[i]) || !Number.isFinite(emax[i])) return undefined;
    // vertices lie within 2.5 (d+1) of the elevated point, their neighbours d+1 further
    const lo = Math.floor(emin[i] / d1) - 6;
    const hi = Math.ceil(emax[i] / d1) + 6;
    if (!(Math.abs(lo) < 2 ** 50 && Math.abs(hi) < 2 ** 50)) return undefined;
    amin.push(BigInt(lo));
    stride.push(span);
    span *= BigInt(hi - lo + 1);
    if (span > 1n << 58n) return undefined;
  }
  return { amin, stride, space: span * BigInt(d1) };
}

/**
 * The CRF's features described rather than computed: the construction computes them in its own
 * memory (the same values appearanceFeatures and smoothnessFeatures give).
 */
export type FeatureSource =
  | { kind: 'appearance'; image: RawImage; thetaAlpha: number; thetaBeta: number }
  | { kind: 'smoothness'; width: number; height: number; thetaGamma: number };

/** How the last construction on this thread went (for tests and the benchmark). */
export const lastBuild = { table: '' as 'direct' | 'hashed' | '', grows: 0 };

/**
 * Builds the lattice of n points with d features each (as buildLattice does) and, when
 * `normalise`, folds the symmetric normalisation into the weights (as latticeKernel does).
 * Returns undefined where this construction does not apply (the caller builds in JavaScript).
 *
 * With an arena, builds in the arena's memory: the result's arrays (offsets, weights, then
 * chains or pairs) stay there, allocated from the arena, as views (g.placed gives their
 * addresses); the working space above them is free again afterwards. Without one, in this
 * thread's builder memory, and the result is copied out.
 */
export function buildLatticeWasm(features: Float32Array | FeatureSource, n: number, d: number, normalise: boolean, arena?: Arena): LatticeGeometry | undefined {
  if (!(Number.isInteger(d) && d >= 1 && d <= MAX_WASM_DIM) || n < 1 || typeof WebAssembly !== 'object') return undefined;
  if (!(features instanceof Float32Array) && (features.kind === 'appearance' ? d !== 5 : d !== 2)) throw new Error(`${features.kind} features have ${d === 5 ? 2 : 5} dimensions, not ${d}`);
  const d1 = d + 1;
  const nd1 = n * d1;
  const ensure = (end: number): WebAssembly.Memory => {
    if (!arena) return ensureMemory(end);
    arena.reserve(end);
    return arena.memory;
  };
  // layout: offsets, weights (kept), scratch, features, keys (m <= n (d+1)), table (grown in place), ...
  const base = arena ? arena.next : 16;
  const offs = base;
  const wts = align(offs + nd1 * 4);
  const sc = align(wts + nd1 * 4);
  const feat = align(sc + SCRATCH_BYTES);
  const keys = align(feat + n * d * 4);
  const table = align(keys + nd1 * 8);
  let mem = ensure(table + 65536);
  const ex = builder(d, mem);
  if (features instanceof Float32Array) {
    new Float32Array(mem.buffer, feat, n * d).set(features.subarray(0, n * d));
  } else if (features.kind === 'appearance') {
    const { image } = features;
    new Uint8Array(mem.buffer, keys, n * 3).set(image.data.subarray(0, n * 3)); // the keys' space is free until the simplices
    ex.featXYRGB(feat, keys, image.width, image.height, 1 / features.thetaAlpha, 1 / features.thetaBeta);
  } else {
    ex.featXY(feat, features.width, features.height, 1 / features.thetaGamma);
  }
  new Uint8Array(mem.buffer, sc, SCRATCH_BYTES).fill(0);

  ex.bounds(sc, feat, n);
  const sv = new DataView(mem.buffer, sc, SCRATCH_BYTES);
  const emin = new Float64Array(d);
  const emax = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    emin[i] = sv.getFloat64(S_EMIN + 8 * i, true);
    emax[i] = sv.getFloat64(S_EMAX + 8 * i, true);
  }
  const pk = packing(d, emin, emax);
  if (!pk) return undefined;
  for (let i = 0; i < d; i++) {
    sv.setBigInt64(S_AMIN + 8 * i, pk.amin[i], true);
    sv.setBigInt64(S_STRIDE + 8 * i, pk.stride[i], true);
  }
  // neighbour n1 along j: remainder k >= 1: k - 1, a_j + 1 (j < d); k = 0: remainder d, a_i - 1 for i != j
  const strideSum = pk.stride.reduce((a, b) => a + b, 0n);
  for (let j = 0; j <= d; j++) {
    const sj = j < d ? pk.stride[j] : 0n;
    sv.setBigInt64(S_DA + 8 * j, -1n + BigInt(d1) * sj, true);
    sv.setBigInt64(S_DB + 8 * j, BigInt(d) - BigInt(d1) * (strideSum - sj), true);
  }

  // A direct table where the key space is small against the points, else a hash table.
  const direct = pk.space <= BigInt(4 * nd1) && pk.space < 1n << 30n;
  lastBuild.table = direct ? 'direct' : 'hashed';
  lastBuild.grows = 0;
  let m: number;
  let tableBytes: number;
  let shift = 0n;
  let mask = 0;
  if (direct) {
    tableBytes = Number(pk.space) * 4;
    mem = ensure(table + tableBytes);
    new Uint8Array(mem.buffer, table, tableBytes).fill(0);
    ex.simplexD(sc, feat, 0, n, offs, wts, keys, table);
    m = new Int32Array(mem.buffer, sc, 1)[0];
  } else {
    let cap = nextPow2(Math.max(4096, n >> 1));
    const grow = (c: number) => {
      cap = c;
      tableBytes = cap * 16;
      mem = ensure(table + tableBytes);
      new Uint8Array(mem.buffer, table, tableBytes).fill(0);
      shift = BigInt(64 - Math.log2(cap));
      mask = cap - 1;
    };
    grow(cap);
    let p = 0;
    while ((p = ex.simplexH(sc, feat, p, n, offs, wts, keys, table, shift, mask)) < n || new Int32Array(mem.buffer, sc, 1)[0] * 2 > mask) {
      grow(cap * 2);
      lastBuild.grows++;
      ex.rehash(keys, new Int32Array(mem.buffer, sc, 1)[0], table, shift, mask);
      if (p >= n) break;
    }
    m = new Int32Array(mem.buffer, sc, 1)[0];
  }

  // neighbours, chains or pairs, normalisation: after the table
  const blur = align(table + tableBytes!);
  const blurLen = d1 * m * 2;
  mem = ensure(blur + blurLen * 4 + 16);
  new Int32Array(mem.buffer, blur, blurLen).fill(0);
  if (direct) ex.neighboursD(sc, keys, m, blur, table);
  else ex.neighboursH(sc, keys, m, blur, table, shift, mask);
  ex.near(sc, blur, m);
  const si = new Int32Array(mem.buffer, sc, SCRATCH_BYTES / 4);
  const regular = si[S_NEAR / 4] > 0.9 * si[S_NEAR / 4 + 1];
  let chainsAt = 0;
  let chainLen = 0;
  if (!regular) {
    chainsAt = align(blur + blurLen * 4);
    chainLen = ex.chainCount(blur, m);
    mem = ensure(chainsAt + chainLen * 4 + 16);
    ex.chainFill(sc, blur, m, chainsAt);
  }
  const starts = new Int32Array(d1 + 1);
  if (!regular) starts.set(new Int32Array(mem.buffer, sc + S_CHAIN, d1 + 1));

  if (normalise) {
    const values = align(regular ? blur + blurLen * 4 : chainsAt + chainLen * 4);
    const spare = align(values + (m + 1) * 4);
    mem = ensure(spare + (m + 1) * 4 + 16);
    new Float32Array(mem.buffer, values, (m + 1) * 2 + 4).fill(0);
    ex.splatOnes(nd1, offs, wts, values);
    let src = values;
    if (regular) {
      let dst = spare;
      for (let j = 0; j <= d; j++) {
        ex.blurPairs1(blur + j * m * 8, m, src, dst);
        [src, dst] = [dst, src];
      }
    } else {
      for (let j = 0; j <= d; j++) ex.blurChains1(chainsAt, starts[j], starts[j + 1], src);
    }
    ex.normalise(n, offs, wts, src);
  }

  const chainStart = starts;
  if (arena) {
    // keep offsets, weights and the chains or pairs; the rest is working space
    const linksFrom = regular ? blur : chainsAt;
    const linksLen = regular ? blurLen : chainLen;
    const links = align(wts + nd1 * 4);
    new Uint8Array(mem.buffer).copyWithin(links, linksFrom, linksFrom + linksLen * 4);
    const at = arena.alloc(links + linksLen * 4 - base);
    if (at !== base) throw new Error('arena moved under the lattice');
    const buf = mem.buffer;
    const g: LatticeGeometry = {
      d,
      n,
      m,
      offsets: new Int32Array(buf, offs, nd1),
      weights: new Float32Array(buf, wts, nd1),
      chains: regular ? new Int32Array(0) : new Int32Array(buf, links, linksLen),
      chainStart,
      placed: { memory: mem, offsets: offs, weights: wts, chains: regular ? 0 : links, pairs: regular ? links : 0 },
    };
    if (regular) g.pairs = new Int32Array(buf, links, linksLen);
    return g;
  }
  const buf = mem.buffer;
  const g: LatticeGeometry = {
    d,
    n,
    m,
    offsets: new Int32Array(buf, offs, nd1).slice(),
    weights: new Float32Array(buf, wts, nd1).slice(),
    chains: regular ? new Int32Array(0) : new Int32Array(buf, chainsAt, chainLen).slice(),
    chainStart,
  };
  if (regular) g.pairs = new Int32Array(buf, blur, blurLen).slice();
  return g;
}
