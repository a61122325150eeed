/**
 * Runs every benchmark in turn, each in its own process (a clean heap and wasm instance), and
 * prints their figures. `npm run bench` builds first; pass names to run a subset:
 *   node dist/bench/run-all.js inference crf
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const all = fs.readdirSync(__dirname)
  .filter((f) => f.endsWith('.js') && f !== 'run-all.js')
  .map((f) => f.replace(/\.js$/, ''));
const wanted = process.argv.slice(2);
const chosen = wanted.length ? all.filter((n) => wanted.includes(n)) : all;
let failed = 0;
for (const name of chosen) {
  console.log(`\n=== bench/${name} ===`);
  const r = spawnSync(process.execPath, [path.join(__dirname, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
