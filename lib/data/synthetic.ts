/**
 * A seeded synthetic segmentation data set for tests and the demo: solid shapes of a few
 * classes (disc, square, triangle, ring, cross, diamond, bar), each with its own saturated
 * colour, on low-saturation textured backgrounds (stripes and noise). Sample i of a seed is
 * the same on every machine, so a "split" is just a different seed or index range.
 */
import { LabelMap, RawImage } from '../contract';
import { Rng, STREAM } from '../runtime/random';

export const SYNTHETIC_CLASS_NAMES = ['background', 'disc', 'square', 'triangle', 'ring', 'cross', 'diamond', 'bar'] as const;
export const SYNTHETIC_MAX_CLASSES = SYNTHETIC_CLASS_NAMES.length;

/** Base colour of each shape class (index = class id; background has none). */
const CLASS_RGB: readonly (readonly [number, number, number])[] = [
  [0, 0, 0], [220, 60, 50], [60, 190, 70], [60, 90, 220], [230, 200, 40], [200, 70, 210], [40, 200, 210], [240, 140, 40],
];

export interface SyntheticOptions {
  /** Image size in pixels (default 97 x 97). */
  width?: number;
  height?: number;
  /** Classes including the background, 2..8 (default 4: background, disc, square, triangle). */
  classes?: number;
  /** Shapes per image: 1..maxShapes (default 3). */
  maxShapes?: number;
  /** Shape radius as a fraction of the smaller image side (default 0.14..0.3). */
  minRadius?: number;
  maxRadius?: number;
  /** Mark pixels on a class boundary as void (255), as VOC masks do (default false). */
  voidBorder?: boolean;
  seed?: number;
}

export interface SyntheticSample {
  id: string;
  image: RawImage;
  label: LabelMap;
}

interface Resolved {
  width: number;
  height: number;
  classes: number;
  maxShapes: number;
  minRadius: number;
  maxRadius: number;
  voidBorder: boolean;
  seed: number;
}

export function resolveSyntheticOptions(o: SyntheticOptions = {}): Resolved {
  const r: Resolved = {
    width: o.width ?? 97,
    height: o.height ?? 97,
    classes: o.classes ?? 4,
    maxShapes: o.maxShapes ?? 3,
    minRadius: o.minRadius ?? 0.14,
    maxRadius: o.maxRadius ?? 0.3,
    voidBorder: o.voidBorder ?? false,
    seed: o.seed ?? 1,
  };
  for (const k of ['width', 'height'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 8 || r[k] > 4096) throw new Error(`synthetic ${k} must be an integer in 8..4096, got ${r[k]}`);
  }
  if (!Number.isInteger(r.classes) || r.classes < 2 || r.classes > SYNTHETIC_MAX_CLASSES) {
    throw new Error(`synthetic classes must be an integer in 2..${SYNTHETIC_MAX_CLASSES} (background included), got ${r.classes}`);
  }
  if (!Number.isInteger(r.maxShapes) || r.maxShapes < 1 || r.maxShapes > 20) throw new Error(`synthetic maxShapes must be an integer in 1..20, got ${r.maxShapes}`);
  if (!(r.minRadius > 0 && r.minRadius <= r.maxRadius && r.maxRadius <= 1)) {
    throw new Error(`synthetic radii must satisfy 0 < minRadius <= maxRadius <= 1, got ${r.minRadius}..${r.maxRadius}`);
  }
  if (!Number.isFinite(r.seed)) throw new Error(`synthetic seed must be a number, got ${r.seed}`);
  return r;
}

export function syntheticClassNames(classes = 4): string[] {
  return SYNTHETIC_CLASS_NAMES.slice(0, classes);
}

/** Is (u, v) — coordinates in the shape's rotated frame, in units of its radius — inside a shape of class c? */
function inside(c: number, u: number, v: number): boolean {
  const au = Math.abs(u);
  const av = Math.abs(v);
  switch (c) {
    case 1: return u * u + v * v < 1;
    case 2: return au < 0.8 && av < 0.8;
    // Equilateral triangle, apex up: the base and two sloping half-planes. Circumradius 1.35, so
    // its area (2.2 r^2) is near the other shapes' and the class is not much rarer.
    case 3: return v > -0.675 && v < 1.35 - Math.sqrt(3) * au;
    case 4: {
      const d = u * u + v * v;
      return d < 1 && d > 0.3;
    }
    case 5: return (au < 1 && av < 0.3) || (au < 0.3 && av < 1);
    case 6: return au + av < 1;
    default: return au < 1 && av < 0.35;
  }
}

const clamp255 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** Sample `index` of the data set defined by the options. */
export function syntheticSample(index: number, opts: SyntheticOptions = {}): SyntheticSample {
  const o = resolveSyntheticOptions(opts);
  const { width: W, height: H } = o;
  const rng = Rng.at(o.seed, STREAM.synthetic, index);
  const img = new Uint8Array(W * H * 3);
  const lab = new Uint8Array(W * H);

  // Background: a grey of random level and a faint tint, two sine gratings, pixel noise.
  const level = rng.uniform(60, 190);
  const tint = [rng.uniform(-12, 12), rng.uniform(-12, 12), rng.uniform(-12, 12)];
  const gratings = [0, 1].map(() => {
    const angle = rng.uniform(0, Math.PI);
    const period = rng.uniform(5, 24);
    return { kx: (Math.cos(angle) * 2 * Math.PI) / period, ky: (Math.sin(angle) * 2 * Math.PI) / period, phase: rng.uniform(0, 2 * Math.PI), amp: rng.uniform(8, 28) };
  });
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let g = level;
      for (const t of gratings) g += t.amp * Math.sin(t.kx * x + t.ky * y + t.phase);
      const n = rng.uniform(-14, 14);
      const p = (y * W + x) * 3;
      img[p] = clamp255(g + tint[0] + n);
      img[p + 1] = clamp255(g + tint[1] + n);
      img[p + 2] = clamp255(g + tint[2] + n);
    }
  }

  // Shapes, later ones on top.
  const count = 1 + rng.int(o.maxShapes);
  const side = Math.min(W, H);
  for (let s = 0; s < count; s++) {
    const c = 1 + rng.int(o.classes - 1);
    const r = rng.uniform(o.minRadius, o.maxRadius) * side;
    const cx = rng.uniform(0.1, 0.9) * W;
    const cy = rng.uniform(0.1, 0.9) * H;
    const th = rng.uniform(0, 2 * Math.PI);
    const cos = Math.cos(th);
    const sin = Math.sin(th);
    const base = CLASS_RGB[c];
    const shade = rng.uniform(0.8, 1.15);
    const col = base.map((v) => v * shade + rng.uniform(-18, 18));
    const x0 = Math.max(0, Math.floor(cx - r - 1));
    const x1 = Math.min(W - 1, Math.ceil(cx + r + 1));
    const y0 = Math.max(0, Math.floor(cy - r - 1));
    const y1 = Math.min(H - 1, Math.ceil(cy + r + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = (x + 0.5 - cx) / r;
        const dy = (y + 0.5 - cy) / r;
        // Image y grows downwards: flip v so "apex up" holds on screen.
        const u = cos * dx + sin * dy;
        const v = -(-sin * dx + cos * dy);
        if (!inside(c, u, v)) continue;
        const i = y * W + x;
        const n = rng.uniform(-12, 12);
        lab[i] = c;
        img[3 * i] = clamp255(col[0] + n);
        img[3 * i + 1] = clamp255(col[1] + n);
        img[3 * i + 2] = clamp255(col[2] + n);
      }
    }
  }

  if (o.voidBorder) {
    const src = lab.slice();
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        const v = src[i];
        if ((x > 0 && src[i - 1] !== v) || (x < W - 1 && src[i + 1] !== v) || (y > 0 && src[i - W] !== v) || (y < H - 1 && src[i + W] !== v)) lab[i] = 255;
      }
    }
  }
  return {
    id: `synthetic-${o.seed}-${index}`,
    image: { width: W, height: H, channels: 3, data: img },
    label: { width: W, height: H, data: lab, ignoreIndex: 255 },
  };
}

/** `count` consecutive samples from index `first`. */
export function syntheticDataset(count: number, opts: SyntheticOptions = {}, first = 0): SyntheticSample[] {
  return Array.from({ length: count }, (_, k) => syntheticSample(first + k, opts));
}
