/**
 * Writes a synthetic set as raw bytes for bench/torch_recipe.py, which searches recipes in PyTorch
 * on exactly the pictures the train node sees: train_img.bin (N x H x W x 3, uint8 RGB),
 * train_lab.bin (N x H x W, uint8 class ids), and val_img.bin / val_lab.bin (the held-out samples
 * from index 1,000,000, as bench/recipe.ts takes them). Writes a meta.json with the options.
 *   node dist/bench/recipe-dump.js OUT_DIR [TRAIN_COUNT=2000] [VAL_COUNT=50]
 * DUMP_SET (default hard-shapes) names the set, DUMP_OPTIONS (JSON) overrides its options
 * (e.g. '{"texture":0}'); the seed is bench/recipe.ts's (7).
 */
import * as fs from 'fs';
import * as path from 'path';
import { syntheticSample, syntheticSet, SyntheticOptions } from '../lib/data/synthetic';

function dump(dir: string, name: string, options: SyntheticOptions, first: number, count: number): void {
  const w = options.width!;
  const h = options.height!;
  const images = Buffer.alloc(count * w * h * 3);
  const labels = Buffer.alloc(count * w * h);
  for (let k = 0; k < count; k++) {
    const s = syntheticSample(first + k, options);
    images.set(s.image.data, k * w * h * 3);
    labels.set(s.label.data, k * w * h);
  }
  fs.writeFileSync(path.join(dir, `${name}_img.bin`), images);
  fs.writeFileSync(path.join(dir, `${name}_lab.bin`), labels);
}

function main(): void {
  const [dir, trainArg, valArg] = process.argv.slice(2);
  if (!dir) throw new Error('usage: node dist/bench/recipe-dump.js OUT_DIR [TRAIN_COUNT] [VAL_COUNT]');
  const options: SyntheticOptions = { ...syntheticSet(process.env.DUMP_SET ?? 'hard-shapes'), seed: 7, ...JSON.parse(process.env.DUMP_OPTIONS ?? '{}') };
  const train = Number(trainArg ?? 2000);
  const val = Number(valArg ?? 50);
  fs.mkdirSync(dir, { recursive: true });
  dump(dir, 'train', options, 0, train);
  dump(dir, 'val', options, 1_000_000, val);
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ options, train, val }));
  console.log(`wrote ${train} training and ${val} held-out samples of ${JSON.stringify(options)} to ${dir}`);
}

main();
