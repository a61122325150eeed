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
import { denseCrf } from '../../lib/crf/dense-crf';
import { syntheticScores } from '../../lib/crf/synthetic';
import { setSortThreshold } from '../../lib/crf/vertex-order';

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

function bothWays(f: Float32Array, n: number, d: number, what: string, sorted = true): { g: LatticeGeometry; table: string; grows: number } {
  const wasm = latticeKernel(f, n, d, 1, true, undefined, sorted);
  const stats = { ...lastBuild };
  const js = latticeKernel(f, n, d, 1, false, undefined, sorted);
  assert.equal(wasm.kind, 'lattice');
  assert.equal(js.kind, 'lattice');
  if (wasm.kind !== 'lattice' || js.kind !== 'lattice') throw new Error('unreachable');
  expectSame(js.g, wasm.g, what);
  return { g: wasm.g, ...stats };
}

describe('lib/crf: the lattice construction in WebAssembly', () => {
  // renumbering by position from the smallest lattices on, so these small scenes exercise it
  let threshold = 0;
  before(() => {
    threshold = setSortThreshold(2);
  });
  after(() => {
    setSortThreshold(threshold);
  });

  for (const sorted of [true, false]) {
    it(`builds what the JavaScript construction builds, bit for bit (every preset, both kernels, direct and hashed tables, chains and pairs; vertices ${sorted ? 'by position' : 'in construction order'})`, () => {
      const seen = new Set<string>();
      for (const seed of [1, 2]) {
        const { image } = scene(96, 72, 4, seed, 14);
        const n = image.width * image.height;
        for (const [name, p] of Object.entries(CRF_PRESETS)) {
          const a = bothWays(appearanceFeatures(image, p.thetaAlpha, p.thetaBeta), n, 5, `${name} appearance, seed ${seed}`, sorted);
          const s = bothWays(smoothnessFeatures(image.width, image.height, p.thetaGamma), n, 2, `${name} smoothness`, sorted);
          for (const r of [a, s]) seen.add(`${r.table} ${r.g.pairs ? 'pairs' : 'chains'}`);
        }
        // narrow position and colour: a fine, sparse lattice
        const fine = bothWays(appearanceFeatures(image, 2, 2), n, 5, `θα 2, θβ 2, seed ${seed}`, sorted);
        seen.add(`${fine.table} ${fine.g.pairs ? 'pairs' : 'chains'}`);
      }
      for (const path of ['direct pairs', 'hashed pairs', 'hashed chains']) assert.ok(seen.has(path), `${path} not exercised: ${[...seen].join(', ')}`);
    });
  }

  it('numbering vertices by position only relabels them: the same simplices, weights and neighbours, and the CRF gives the same Q bit for bit', () => {
    const { image, labels } = scene(90, 70, 4, 4, 14);
    const W = image.width;
    const H = image.height;
    const n = W * H;
    for (const [name, p] of Object.entries(CRF_PRESETS)) {
      for (const [f, d] of [[appearanceFeatures(image, p.thetaAlpha, p.thetaBeta), 5], [smoothnessFeatures(W, H, p.thetaGamma), 2]] as const) {
        const what = `${name}, d ${d}`;
        const built = buildLatticeWasm(f, n, d, true, undefined, false)!;
        const byPos = buildLatticeWasm(f, n, d, true, undefined, true)!;
        assert.equal(byPos.m, built.m, `${what}: m`);
        sameBits(byPos.weights, built.weights, `${what} weights`);
        // rank[v] from the offsets: one consistent bijection of the rows
        const rank = new Int32Array(built.m + 1).fill(-1);
        const used = new Uint8Array(built.m + 1);
        for (let e = 0; e < built.offsets.length; e++) {
          const a = built.offsets[e];
          const b = byPos.offsets[e];
          if (rank[a] < 0) {
            assert.equal(used[b], 0, `${what}: row ${b} given twice`);
            rank[a] = b;
            used[b] = 1;
          } else assert.equal(rank[a], b, `${what}: row ${a} renumbered inconsistently`);
        }
        // the appearance lattice spans several position cells (one θα wide) where the image is wider than θα
        if (d === 5 && W > p.thetaAlpha) assert.ok(rank.some((r, v) => v > 0 && r !== v), `${what}: not renumbered`);
        // neighbours: the same links, relabelled (as pairs: n1 and n2 of every row, every direction)
        const links = (g: LatticeGeometry): Int32Array => {
          if (g.pairs) return g.pairs;
          const out = new Int32Array((g.d + 1) * g.m * 2);
          for (let j = 0; j <= g.d; j++) {
            let prev = 0;
            for (let t = g.chainStart[j]; t < g.chainStart[j + 1]; t++) {
              const v = g.chains[t];
              if (v !== 0 && prev !== 0) {
                out[(j * g.m + prev - 1) * 2 + 1] = v;
                out[(j * g.m + v - 1) * 2] = prev;
              }
              prev = v;
            }
          }
          return out;
        };
        const la = links(built);
        const lb = links(byPos);
        rank[0] = 0;
        for (let j = 0; j <= d; j++) {
          for (let v = 1; v <= built.m; v++) {
            for (const s of [0, 1]) {
              const a = la[(j * built.m + v - 1) * 2 + s];
              assert.equal(lb[(j * built.m + rank[v] - 1) * 2 + s], rank[a], `${what}: direction ${j}, row ${v}, side ${s}`);
            }
          }
        }
      }
      const map = syntheticScores(labels, 4, { seed: 3, cellNoise: 1.5, pixelNoise: 0.5 });
      const q = (sorted: string) => {
        const prev = process.env.DEEPLAB_CRF_SORT_LATTICE;
        process.env.DEEPLAB_CRF_SORT_LATTICE = sorted;
        try {
          return denseCrf(map, image, p, { threads: 1 }).probs.data;
        } finally {
          if (prev === undefined) delete process.env.DEEPLAB_CRF_SORT_LATTICE;
          else process.env.DEEPLAB_CRF_SORT_LATTICE = prev;
        }
      };
      sameBits(q('1'), q('0'), `${name}: Q`);
    }
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
