/**
 * What Node-RED's own message clone (RED.util.cloneMessage from @node-red/util: lodash cloneDeep
 * on the main thread, once per extra wire of a fan-out) costs for each node's output, at 513x513
 * and 4000x3000 with 21 classes, in the form the nodes sent before (typed arrays, dense-crf's
 * probabilities beside its labels, nothing capped) and in the form they send now (Buffers, sizes
 * under the default 512 MB memory budget).
 *
 * The old form at 4000x3000 is not run by default: its typed arrays hold 12 M to 252 M elements
 * and cloneDeep walks every index as a string key (issue 12: a RangeError after 170 s and 7.8 GB
 * at 3000x3000); the figure printed is the 513x513 time per element times the element count,
 * marked "est.". BENCH_CLONE_FULL=1 runs the old form at 4000x3000 too (minutes, gigabytes).
 *
 *   node dist/bench/clone.js
 */
import { performance } from 'perf_hooks';
import { planCrf } from '../lib/crf/working-resolution';
import { planFusion } from '../lib/fusion';
import { planUpsample } from '../lib/ops/score-map';
import { defaultMemoryBudget, formatBytes } from '../lib/runtime/memory-budget';

const { cloneMessage } = (require('@node-red/util') as { util: { cloneMessage: <T>(m: T) => T } }).util;

const C = 21;
const STRIDE = 8;
type Msg = Record<string, unknown>;
type Form = 'typed' | 'buffer';

/** A float map's data in either form (zeros: the clone cost does not depend on the values). */
const floats = (n: number, form: Form) => (form === 'typed' ? new Float32Array(n) : Buffer.alloc(n * 4));
const bytes = (n: number, form: Form) => (form === 'typed' ? new Uint8Array(n) : Buffer.alloc(n));
const scoreMap = (w: number, h: number, form: Form, kind = 'logits', stride = STRIDE) =>
  ({ width: w, height: h, classes: C, data: floats(w * h * C, form), kind, stride });
const labelMap = (w: number, h: number, form: Form) => ({ width: w, height: h, data: bytes(w * h, form), ignoreIndex: 255 });
const rawImage = (w: number, h: number, form: Form) => ({ width: w, height: h, channels: 3, data: bytes(w * h * 3, form) });

/** The logits' size for deeplab-infer's default plan (longest side 513, sizes k*8+1). */
function logitsSize(W: number, H: number): [number, number] {
  const f = 513 / Math.max(W, H);
  const snap = (v: number) => Math.max(1, Math.round((v - 1) / STRIDE)) * STRIDE + 1;
  return [(snap(W * f) - 1) / STRIDE + 1, (snap(H * f) - 1) / STRIDE + 1];
}

interface Case {
  node: string;
  /** The message the node sends, in the old form and in the new one. */
  before(W: number, H: number): Msg;
  after(W: number, H: number): Msg;
}

const budget = defaultMemoryBudget();
const png = Buffer.alloc(200_000);

const CASES: Case[] = [
  {
    node: 'deeplab-infer (logits + image)',
    before: (W, H) => ({ payload: scoreMap(...logitsSize(W, H), 'typed'), image: rawImage(W, H, 'typed'), classNames: [] }),
    after: (W, H) => ({ payload: scoreMap(...logitsSize(W, H), 'buffer'), image: rawImage(W, H, 'buffer'), classNames: [] }),
  },
  {
    node: 'msc-fusion base image (probs)',
    before: (W, H) => ({ payload: scoreMap(W, H, 'typed', 'probs', 1), image: rawImage(W, H, 'typed') }),
    after: (W, H) => {
      const [w, h] = logitsSize(W, H);
      const maps = [{ width: w, height: h, classes: C, data: new Float32Array(0), kind: 'logits' as const, stride: STRIDE }];
      const t = planFusion(maps, { base: 'image', width: W, height: H }, budget).target;
      return { payload: scoreMap(t.width, t.height, 'buffer', 'probs', t.stride), image: rawImage(W, H, 'buffer') };
    },
  },
  {
    node: 'upsample probs (its default)',
    before: (W, H) => ({ payload: scoreMap(W, H, 'typed', 'probs', 1), image: rawImage(W, H, 'typed') }),
    after: (W, H) => {
      const [w, h] = logitsSize(W, H);
      const s = planUpsample({ width: w, height: h, classes: C }, W, H, 'probs', budget).floatSize!;
      return { payload: scoreMap(s.width, s.height, 'buffer', 'probs', W / s.width), image: rawImage(W, H, 'buffer') };
    },
  },
  {
    node: 'upsample labels',
    before: (W, H) => ({ payload: labelMap(W, H, 'typed'), image: rawImage(W, H, 'typed') }),
    after: (W, H) => ({ payload: labelMap(W, H, 'buffer'), image: rawImage(W, H, 'buffer') }),
  },
  {
    node: 'dense-crf labels (its default)',
    // Before: the probabilities rode along in msg.probabilities.
    before: (W, H) => ({ payload: labelMap(W, H, 'typed'), probabilities: scoreMap(W, H, 'typed', 'probs', 1), image: rawImage(W, H, 'typed') }),
    after: (W, H) => ({ payload: labelMap(W, H, 'buffer'), image: rawImage(W, H, 'buffer') }),
  },
  {
    node: 'dense-crf probs (asked for)',
    before: (W, H) => ({ payload: scoreMap(W, H, 'typed', 'probs', 1), labels: labelMap(W, H, 'typed'), image: rawImage(W, H, 'typed') }),
    after: (W, H) => {
      const [w, h] = logitsSize(W, H);
      const p = planCrf({ width: w, height: h, classes: C }, { width: W, height: H }, budget, true);
      return { payload: scoreMap(p.width, p.height, 'buffer', 'probs', W / p.width), labels: labelMap(W, H, 'buffer'), image: rawImage(W, H, 'buffer') };
    },
  },
  {
    node: 'seg-render (PNG, after dense-crf)',
    before: (W, H) => ({ payload: png, probabilities: scoreMap(W, H, 'typed', 'probs', 1), image: rawImage(W, H, 'typed'), classesPresent: [] }),
    after: (W, H) => ({ payload: png, image: rawImage(W, H, 'buffer'), classesPresent: [] }),
  },
  {
    node: 'miou-eval (figures, msg passed on)',
    before: (W, H) => ({ payload: { image: {}, running: {} }, probabilities: scoreMap(W, H, 'typed', 'probs', 1), image: rawImage(W, H, 'typed'), groundTruth: labelMap(W, H, 'typed') }),
    after: (W, H) => ({ payload: { image: {}, running: {} }, image: rawImage(W, H, 'buffer'), groundTruth: labelMap(W, H, 'buffer') }),
  },
];

/** Typed-array elements and bulk bytes a message holds. */
function measure(msg: Msg): { elements: number; bytes: number } {
  let elements = 0;
  let total = 0;
  const walk = (v: unknown) => {
    if (ArrayBuffer.isView(v)) {
      total += v.byteLength;
      if (!Buffer.isBuffer(v)) elements += (v as Uint8Array).length;
    } else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(msg);
  return { elements, bytes: total };
}

/** Median wall time of cloneMessage over `runs` (fewer for slow clones). */
function cloneMs(msg: Msg): number {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    cloneMessage(msg);
    times.push(performance.now() - t0);
    if (times[0] > 200 && times.length >= 1) break;
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`);
const fmtMB = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;

function main(): void {
  const full = process.env.BENCH_CLONE_FULL === '1';
  console.log(`RED.util.cloneMessage per extra wire (Node ${process.version}, @node-red/util ${require('@node-red/util/package.json').version}), ${C} classes, memory budget ${formatBytes(budget)}`);
  console.log('node output                          size        before: bulk / clone          now: bulk / clone');
  const perElement = new Map<string, number>();
  for (const [W, H] of [[513, 513], [4000, 3000]] as const) {
    for (const c of CASES) {
      const b = c.before(W, H);
      const mb = measure(b);
      let before: string;
      if (W === 513 || full) {
        const ms = cloneMs(b);
        perElement.set(c.node, ms / Math.max(1, mb.elements));
        before = fmtMs(ms);
      } else before = `${fmtMs(perElement.get(c.node)! * mb.elements)} est.`;
      const a = c.after(W, H);
      const ma = measure(a);
      const after = fmtMs(cloneMs(a));
      console.log(`${c.node.padEnd(36)} ${`${W}x${H}`.padEnd(10)} ${fmtMB(mb.bytes).padStart(10)} / ${before.padEnd(14)} ${fmtMB(ma.bytes).padStart(10)} / ${after}`);
    }
  }
  // The carriers themselves, one 513x513x21 float map (22 MB).
  const n = 513 * 513 * C;
  const carriers: [string, unknown][] = [
    ['Float32Array', new Float32Array(n)], ['ArrayBuffer', new ArrayBuffer(n * 4)], ['Buffer', Buffer.alloc(n * 4)], ['Uint8Array 513x513 (labels)', new Uint8Array(513 * 513)],
  ];
  console.log('\ncarrier of one 513x513x21 float map (22 MB)   clone');
  for (const [name, data] of carriers) console.log(`${name.padEnd(44)} ${fmtMs(cloneMs({ payload: { data } }))}`);
  const shared = Buffer.alloc(8);
  const copy = cloneMessage({ payload: { data: shared } }).payload.data;
  console.log(`\na cloned Buffer shares the original's memory: ${copy.buffer === shared.buffer} (lodash cloneDeep keeps Buffers as views; nodes treat inputs as read-only)`);
}

main();
