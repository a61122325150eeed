/**
 * Seeded synthetic segmentation data sets for tests, the demo and the recipe's tuning. Shapes of
 * a few classes (disc, square, triangle, ring, cross, diamond, bar) in two styles:
 * - 'class-colour' (the demo set, "shapes"): each class has its own saturated colour on
 *   low-saturation textured backgrounds (stripes and noise): colour alone separates the classes.
 * - 'random-colour' ("hard-shapes"): every object has a random colour and a shading gradient, on
 *   backgrounds of random colour with coloured stripes and noise: only the shape tells the class.
 * Sample i of a seed is the same on every machine, so a "split" is just a different seed or
 * index range.
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
  /** How objects are coloured (default 'class-colour'; see the module comment). */
  style?: SyntheticStyle;
  /** 'random-colour' only: scale of the background's gratings and noise (default 1). */
  texture?: number;
  /** 'random-colour' only: objects lie wholly inside the image and do not touch (default false). */
  separate?: boolean;
  /** 'random-colour' only: shapes at random rotations (default true); false: squares axis-aligned, triangles apex up. */
  rotate?: boolean;
  seed?: number;
}

export type SyntheticStyle = 'class-colour' | 'random-colour';

/**
 * The named synthetic sets the train node offers. "shapes": the demo set, learnt in a minute.
 * "hard-shapes": 3 shape classes + background at 161 px, random object colours on coloured
 * textured backgrounds; where colour says nothing, the network has to learn shape (the set the
 * training recipe is tuned on: bench/recipe.ts).
 */
export const SYNTHETIC_SETS = Object.freeze({
  shapes: Object.freeze({ width: 97, height: 97, classes: 4, style: 'class-colour' as SyntheticStyle }),
  'hard-shapes': Object.freeze({ width: 161, height: 161, classes: 4, minRadius: 0.12, maxRadius: 0.26, style: 'random-colour' as SyntheticStyle }),
});
export type SyntheticSetName = keyof typeof SYNTHETIC_SETS;

/** The options of a named set (a copy), or an error naming the sets. */
export function syntheticSet(name: string): SyntheticOptions {
  const set = (SYNTHETIC_SETS as Record<string, SyntheticOptions>)[name];
  if (!set) throw new Error(`unknown synthetic set "${name}": ${Object.keys(SYNTHETIC_SETS).join(' or ')}`);
  return { ...set };
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
  style: SyntheticStyle;
  texture: number;
  separate: boolean;
  rotate: boolean;
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
    style: o.style ?? 'class-colour',
    texture: o.texture ?? 1,
    separate: o.separate ?? false,
    rotate: o.rotate ?? true,
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
  if (r.style !== 'class-colour' && r.style !== 'random-colour') throw new Error(`synthetic style must be class-colour or random-colour, got ${r.style}`);
  if (!(Number.isFinite(r.texture) && r.texture >= 0 && r.texture <= 4)) throw new Error(`synthetic texture must be a number in 0..4, got ${r.texture}`);
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

type Rgb = [number, number, number];

interface Grating {
  kx: number;
  ky: number;
  phase: number;
  amp: number;
}

function randomGrating(rng: Rng, minPeriod: number, maxPeriod: number, minAmp: number, maxAmp: number): Grating {
  const angle = rng.uniform(0, Math.PI);
  const period = rng.uniform(minPeriod, maxPeriod);
  return { kx: (Math.cos(angle) * 2 * Math.PI) / period, ky: (Math.sin(angle) * 2 * Math.PI) / period, phase: rng.uniform(0, 2 * Math.PI), amp: rng.uniform(minAmp, maxAmp) };
}

/** The bounding box of a shape of radius r at (cx, cy), clipped to the image. */
function box(o: Resolved, cx: number, cy: number, r: number): [number, number, number, number] {
  return [Math.max(0, Math.floor(cx - r - 1)), Math.min(o.width - 1, Math.ceil(cx + r + 1)), Math.max(0, Math.floor(cy - r - 1)), Math.min(o.height - 1, Math.ceil(cy + r + 1))];
}

/**
 * Calls paint(i, dx, dy) for every pixel i inside a shape of class c, radius r, centre (cx, cy),
 * rotation th; dx, dy: the pixel's offset from the centre in units of r (image axes).
 */
function forEachInside(o: Resolved, c: number, cx: number, cy: number, r: number, th: number, paint: (i: number, dx: number, dy: number) => void): void {
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  const [x0, x1, y0, y1] = box(o, cx, cy, r);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = (x + 0.5 - cx) / r;
      const dy = (y + 0.5 - cy) / r;
      // Image y grows downwards: flip v so "apex up" holds on screen.
      const u = cos * dx + sin * dy;
      const v = -(-sin * dx + cos * dy);
      if (inside(c, u, v)) paint(y * o.width + x, dx, dy);
    }
  }
}

/** The demo style: grey textured background, each class in its own colour. */
function paintClassColour(o: Resolved, rng: Rng, img: Uint8Array, lab: Uint8Array): void {
  const { width: W, height: H } = o;
  // Background: a grey of random level and a faint tint, two sine gratings, pixel noise.
  const level = rng.uniform(60, 190);
  const tint = [rng.uniform(-12, 12), rng.uniform(-12, 12), rng.uniform(-12, 12)];
  const gratings = [0, 1].map(() => randomGrating(rng, 5, 24, 8, 28));
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
    const base = CLASS_RGB[c];
    const shade = rng.uniform(0.8, 1.15);
    const col = base.map((v) => v * shade + rng.uniform(-18, 18));
    forEachInside(o, c, cx, cy, r, th, (i) => {
      const n = rng.uniform(-12, 12);
      lab[i] = c;
      img[3 * i] = clamp255(col[0] + n);
      img[3 * i + 1] = clamp255(col[1] + n);
      img[3 * i + 2] = clamp255(col[2] + n);
    });
  }
}

const randomRgb = (rng: Rng, lo: number, hi: number): Rgb => [rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(lo, hi)];

/**
 * The shape-only style: a background of random colour with two coloured gratings and noise;
 * objects of random colour (kept at a visible distance from the background's mean colour) with a
 * linear shading across them and noise, so neither colour nor flat interiors give the class away.
 */
function paintRandomColour(o: Resolved, rng: Rng, img: Uint8Array, lab: Uint8Array): void {
  const { width: W, height: H } = o;
  const bg = randomRgb(rng, 50, 205);
  const gratings = [0, 1].map(() => ({ g: randomGrating(rng, 4, 30, 0.4, 1), rgb: randomRgb(rng, -30, 30) }));
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = (y * W + x) * 3;
      const n = rng.uniform(-16, 16) * o.texture;
      for (let k = 0; k < 3; k++) {
        let v = bg[k] + n;
        for (const t of gratings) v += o.texture * t.g.amp * t.rgb[k] * Math.sin(t.g.kx * x + t.g.ky * y + t.g.phase);
        img[p + k] = clamp255(v);
      }
    }
  }

  const count = 1 + rng.int(o.maxShapes);
  const side = Math.min(W, H);
  const placed: [number, number, number][] = [];
  for (let s = 0; s < count; s++) {
    const c = 1 + rng.int(o.classes - 1);
    const r = rng.uniform(o.minRadius, o.maxRadius) * side;
    let cx = rng.uniform(0.1, 0.9) * W;
    let cy = rng.uniform(0.1, 0.9) * H;
    if (o.separate) {
      // Whole and apart: a few tries for a centre whose bounding circle (the triangle's reach,
      // 1.35 r) is inside the image and clear of the others; a shape that finds none is left out.
      const reach = 1.35 * r + 1;
      const fits = (x: number, y: number) => placed.every(([px, py, pr]) => Math.hypot(x - px, y - py) > reach + pr + 2);
      let ok = false;
      for (let tries = 0; tries < 20 && !ok; tries++) {
        cx = rng.uniform(reach, W - reach);
        cy = rng.uniform(reach, H - reach);
        ok = fits(cx, cy);
      }
      if (!ok) continue;
      placed.push([cx, cy, reach]);
    }
    const turn = rng.uniform(0, 2 * Math.PI);
    const th = o.rotate ? turn : 0;
    // Any colour, but not one that melts into the background (a few tries, then the farthest).
    let col = randomRgb(rng, 0, 255);
    for (let tries = 0; tries < 6 && Math.hypot(col[0] - bg[0], col[1] - bg[1], col[2] - bg[2]) < 90; tries++) col = randomRgb(rng, 0, 255);
    const shadeAngle = rng.uniform(0, 2 * Math.PI);
    const shade = rng.uniform(0, 40);
    const sx = Math.cos(shadeAngle) * shade;
    const sy = Math.sin(shadeAngle) * shade;
    forEachInside(o, c, cx, cy, r, th, (i, dx, dy) => {
      const n = rng.uniform(-12, 12) + sx * dx + sy * dy;
      lab[i] = c;
      img[3 * i] = clamp255(col[0] + n);
      img[3 * i + 1] = clamp255(col[1] + n);
      img[3 * i + 2] = clamp255(col[2] + n);
    });
  }
}

/** Sample `index` of the data set defined by the options. */
export function syntheticSample(index: number, opts: SyntheticOptions = {}): SyntheticSample {
  const o = resolveSyntheticOptions(opts);
  const { width: W, height: H } = o;
  const rng = Rng.at(o.seed, STREAM.synthetic, index);
  const img = new Uint8Array(W * H * 3);
  const lab = new Uint8Array(W * H);

  if (o.style === 'random-colour') paintRandomColour(o, rng, img, lab);
  else paintClassColour(o, rng, img, lab);

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
