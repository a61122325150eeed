#!/usr/bin/env node
/**
 * The layer order of lib/, checked over its import graph: a module may import from its own
 * layer or from a layer below it, never from one above. `npm run lint` runs this after eslint.
 *
 * The layers, bottom to top (a layer is a folder of lib/, or lib/contract.ts):
 *
 *   contract   the message contract (RawImage, ScoreMap, LabelMap): plain types and checks
 *   runtime    plain helpers with no domain: seeded randomness, bounded queue, flow pacer
 *   engine     tfjs backends and the kernels tfjs lacks
 *   data       image codec, data sets on disk, synthetic data, augmentation (no network in it)
 *   models     the networks, their spec, preprocessing
 *   metrics    confusion matrix, IoU, heatmap
 *   render     labels to pictures
 *   ops        plain typed-array operations on score maps (resize, softmax, argmax, upsample)
 *   fusion     multi-scale / flip fusion of score maps
 *   crf        the dense CRF
 *   weights    the saved format, the loader and the importers
 *   inference  THE forward wrapper: plan, pad, normalise, run, crop, upsample
 *   training   the training loop, its worker threads, evaluation, the CRF search
 *   compute    the worker pool, the typed task map, the client and the model cache / host
 *   transport  the MQTT frame and result envelopes, deferred acknowledgements (scale-out over a broker)
 *
 * lib/index.ts (the package's public surface) and lib/cli.ts (the command line) are entry points
 * above every layer and may import anything. Type-only imports count
 * too: a type from above is still a dependency on the layer above.
 *
 * Every folder of lib/ must be placed in the order (an unknown one fails the check), so a new
 * folder is a decision, not an accident.
 */
'use strict';
const fs = require('fs');
const path = require('path');

const LAYERS = ['contract', 'runtime', 'engine', 'data', 'models', 'metrics', 'render', 'ops', 'fusion', 'crf', 'weights', 'inference', 'training', 'compute', 'transport'];
const EXEMPT = new Set(['index', 'cli']);

/**
 * Upward imports found in the tree just before this check existed (lib/worker/ placed right
 * above engine, as the infrastructure it was meant to be, and lib/cache/ at compute's level):
 * worker/task-modules -> cache x2, fusion, crf; data/augment -> training, models; data/synthetic
 * -> training.
 */
const BEFORE = 7;

/** Upward imports tolerated for now, each with its way out (none at present). */
const ALLOWED = new Set([]);

const root = path.resolve(__dirname, '..', 'lib');

function* sources(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (/\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name)) yield p;
  }
}

/** The layer of a file under lib/: its first folder, or its base name for a top-level file. */
function layerOf(file) {
  const rel = path.relative(root, file).split(path.sep);
  return rel.length === 1 ? rel[0].replace(/\.(ts|js|json)$/, '') : rel[0];
}

/** Relative module specifiers of a source: import/export ... from, bare import, require(), import(). */
function specifiers(text) {
  const out = [];
  const re = /(?:\bfrom\s*|\bimport\s*|\brequire\s*\(\s*|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]*)['"]/g;
  // Comments may quote imports ("imports from '../x'"): strip them first.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  for (let m; (m = re.exec(code)); ) out.push(m[1]);
  return out;
}

const upward = [];
const allowed = [];
const unknown = new Set();
let edges = 0;
for (const file of sources(root)) {
  const from = layerOf(file);
  if (EXEMPT.has(from)) continue;
  const fromRank = LAYERS.indexOf(from);
  if (fromRank < 0) unknown.add(from);
  for (const spec of specifiers(fs.readFileSync(file, 'utf8'))) {
    const target = path.resolve(path.dirname(file), spec);
    if (path.relative(root, target).startsWith('..')) continue; // outside lib/ (package.json...)
    edges++;
    const to = layerOf(target);
    const toRank = LAYERS.indexOf(to);
    if (toRank < 0) unknown.add(to);
    if (fromRank < 0 || toRank <= fromRank) continue;
    const rel = path.relative(root, file).split(path.sep).join('/');
    (ALLOWED.has(rel) ? allowed : upward).push(`${rel} -> ${spec} (${from} imports ${to})`);
  }
}

console.log(`check-imports: ${edges} imports inside lib/ over ${LAYERS.length} layers (${LAYERS.join(' < ')})`);
for (const u of upward) console.log(`  upward: ${u}`);
for (const u of allowed) console.log(`  upward, allowed until it moves: ${u}`);
console.log(`check-imports: upward imports now ${upward.length}${allowed.length ? ` (+${allowed.length} allowed)` : ''} (before the layer order was enforced: ${BEFORE})`);
if (unknown.size) console.log(`check-imports: folders of lib/ not in the layer order: ${[...unknown].join(', ')} (place them in LAYERS)`);
if (upward.length || unknown.size) process.exit(1);
