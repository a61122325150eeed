import { strict as assert } from 'assert';
import * as fs from 'fs';
import { decodeImage } from '../../lib/data/image';
import { Arena, releaseArena } from '../../lib/crf/arena';
import { LatticeGeometry } from '../../lib/crf/lattice';
import { buildLatticeWasm, lastBuild } from '../../lib/crf/lattice-wasm';
import { appearanceFeatures, latticeKernel, smoothnessFeatures } from '../../lib/crf/mean-field';
import { CRF_PRESETS } from '../../lib/crf/params';
import { seededRandom } from '../../lib/runtime/random';
import { vocSample } from '../helpers/shared-data';
import { scene } from './crf-fixtures';

/**
 * The lattice construction in WebAssembly (lattice-wasm.ts) against the JavaScript one
 * (lattice.ts + latticeKernel's normalisation): the same vertices numbered alike, the same
 * neighbour chains or pairs, the same normalised weights, bit for bit.
 */

function sameBits(a: ArrayLike<number> | undefined, b: ArrayLike<number> | undefined, what: string): void {
  assert.equal(a === undefined, b === undefined, `${what}: present in one only`);
  if (!a || !b) return;
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

function expectSame(js: LatticeGeometry, wasm: LatticeGeometry, what: string): void {
  assert.deepEqual([wasm.d, wasm.n, wasm.m], [js.d, js.n, js.m], `${what}: d, n, m`);
  sameBits(wasm.offsets, js.offsets, `${what} offsets`);
  sameBits(wasm.weights, js.weights, `${what} weights`);
  sameBits(wasm.chains, js.chains, `${what} chains`);
  sameBits(wasm.chainStart, js.chainStart, `${what} chainStart`);
  sameBits(wasm.pairs, js.pairs, `${what} pairs`);
}

function bothWays(f: Float32Array, n: number, d: number, what: string): { g: LatticeGeometry; table: string; grows: number } {
  const wasm = latticeKernel(f, n, d, 1, true);
  const stats = { ...lastBuild };
  const js = latticeKernel(f, n, d, 1, false);
  assert.equal(wasm.kind, 'lattice');
  assert.equal(js.kind, 'lattice');
  if (wasm.kind !== 'lattice' || js.kind !== 'lattice') throw new Error('unreachable');
  expectSame(js.g, wasm.g, what);
  return { g: wasm.g, ...stats };
}

describe('lib/crf: the lattice construction in WebAssembly', () => {
  it('builds what the JavaScript construction builds, bit for bit (every preset, both kernels, direct and hashed tables, chains and pairs)', () => {
    const seen = new Set<string>();
    for (const seed of [1, 2]) {
      const { image } = scene(96, 72, 4, seed, 14);
      const n = image.width * image.height;
      for (const [name, p] of Object.entries(CRF_PRESETS)) {
        const a = bothWays(appearanceFeatures(image, p.thetaAlpha, p.thetaBeta), n, 5, `${name} appearance, seed ${seed}`);
        const s = bothWays(smoothnessFeatures(image.width, image.height, p.thetaGamma), n, 2, `${name} smoothness`);
        for (const r of [a, s]) seen.add(`${r.table} ${r.g.pairs ? 'pairs' : 'chains'}`);
      }
      // narrow position and colour: a fine, sparse lattice
      const fine = bothWays(appearanceFeatures(image, 2, 2), n, 5, `θα 2, θβ 2, seed ${seed}`);
      seen.add(`${fine.table} ${fine.g.pairs ? 'pairs' : 'chains'}`);
    }
    for (const path of ['direct pairs', 'hashed pairs', 'hashed chains']) assert.ok(seen.has(path), `${path} not exercised: ${[...seen].join(', ')}`);
  });

  it('grows its hash table as vertices come (a colour-noise image: several vertices a pixel) and stays identical', () => {
    const rand = seededRandom(7);
    const W = 120;
    const H = 90;
    const data = new Uint8Array(W * H * 3);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
    const r = bothWays(appearanceFeatures({ width: W, height: H, channels: 3, data }, 67, 3), W * H, 5, 'noise');
    assert.equal(r.table, 'hashed');
    assert.ok(r.grows >= 1, `grew ${r.grows} times`);
    assert.ok(r.g.m > 2 * W * H, `m ${r.g.m}`);
  });

  it('builds the same into the CRF\'s arena, where the arrays stay (addresses given) and the working space is freed', () => {
    const { image } = scene(80, 60, 4, 3, 14);
    const n = image.width * image.height;
    const p = CRF_PRESETS['deeplab-v2'];
    const fa = appearanceFeatures(image, p.thetaAlpha, p.thetaBeta);
    const fs2 = smoothnessFeatures(image.width, image.height, p.thetaGamma);
    const arena = Arena.acquire(1 << 16);
    const start = arena.next;
    const a = buildLatticeWasm(fa, n, 5, true, arena)!;
    const afterA = arena.next;
    const s = buildLatticeWasm(fs2, n, 2, true, arena)!;
    for (const [g, f, d] of [[a, fa, 5], [s, fs2, 2]] as const) {
      expectSame(buildLatticeWasm(f, n, d, true)!, g, `d ${d} in the arena`);
      const at = g.placed!;
      assert.equal(at.memory, arena.memory);
      sameBits(arena.i32(at.offsets, n * (d + 1)), g.offsets, 'offsets at their address');
      sameBits(arena.f32(at.weights, n * (d + 1)), g.weights, 'weights at their address');
      if (g.pairs) sameBits(arena.i32(at.pairs, g.pairs.length), g.pairs, 'pairs at their address');
      else sameBits(arena.i32(at.chains, g.chains.length), g.chains, 'chains at their address');
    }
    // only the results stay allocated: offsets + weights (4 bytes each) + links, per kernel
    const kept = (g: LatticeGeometry) => 8 * n * (g.d + 1) + 4 * (g.pairs ? g.pairs.length : g.chains.length);
    assert.ok(afterA - start <= kept(a) + 64, `${afterA - start} bytes kept for ${kept(a)}`);
    assert.ok(arena.next - afterA <= kept(s) + 64);
    releaseArena();
  });

  it('computes the features itself from the image (a FeatureSource) to the same lattice', () => {
    const { image } = scene(70, 50, 4, 5, 14);
    const n = image.width * image.height;
    for (const p of Object.values(CRF_PRESETS)) {
      const fromImage = buildLatticeWasm({ kind: 'appearance', image, thetaAlpha: p.thetaAlpha, thetaBeta: p.thetaBeta }, n, 5, true)!;
      expectSame(buildLatticeWasm(appearanceFeatures(image, p.thetaAlpha, p.thetaBeta), n, 5, true)!, fromImage, 'appearance');
      const grid = buildLatticeWasm({ kind: 'smoothness', width: image.width, height: image.height, thetaGamma: p.thetaGamma }, n, 2, true)!;
      expectSame(buildLatticeWasm(smoothnessFeatures(image.width, image.height, p.thetaGamma), n, 2, true)!, grid, 'smoothness');
    }
  });

  it('handles one, two and three points, and a single row', () => {
    for (const n of [1, 2, 3]) {
      const f = new Float32Array(n * 5).map((_, i) => (i * 7) % 11);
      bothWays(f, n, 5, `${n} points`);
      bothWays(new Float32Array(n * 2).map((_, i) => i), n, 2, `${n} points, d 2`);
    }
    bothWays(smoothnessFeatures(300, 1, 1), 300, 2, 'one row');
  });

  it('declines what its packed keys cannot hold (d above 7, a huge feature range); the JavaScript construction runs instead', () => {
    const n = 50;
    const f8 = new Float32Array(n * 8).map((_, i) => i % 13);
    assert.equal(buildLatticeWasm(f8, n, 8, true), undefined);
    const huge = new Float32Array(n * 5).map((_, i) => (i % 2 ? 1e15 : -1e15) * (i % 3));
    assert.equal(buildLatticeWasm(huge, n, 5, true), undefined);
    const k = latticeKernel(huge, n, 5, 1);
    assert.equal(k.kind, 'lattice');
    if (k.kind === 'lattice') assert.ok(k.g.m > 0);
  });

  it('matches on a real photo (VOC vainf_000, 513x513, DeepLab v2 preset: 140 k appearance vertices)', async () => {
    const image = await decodeImage(fs.readFileSync(vocSample('vainf_000')));
    const p = CRF_PRESETS['deeplab-v2'];
    const n = image.width * image.height;
    const a = bothWays(appearanceFeatures(image, p.thetaAlpha, p.thetaBeta), n, 5, 'vainf_000 appearance');
    assert.ok(a.g.m > 100_000);
    bothWays(smoothnessFeatures(image.width, image.height, p.thetaGamma), n, 2, 'vainf_000 smoothness');
  });
});
