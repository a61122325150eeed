#!/usr/bin/env node
// Makes sure Debian's chromium is installed for the browser end-to-end tests (playwright-core drives it;
// Playwright's own browser download cannot reach its host here). Installs it with apt-get when missing
// (as root, or through passwordless sudo). Prints the executable's path; exits 1 when it cannot be had.
// DEEPLAB_CHROMIUM=/path/to/chrome points at another Chromium build instead.
const fs = require('fs');
const { spawnSync } = require('child_process');

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

function found() {
  const own = process.env.DEEPLAB_CHROMIUM;
  if (own) return fs.existsSync(own) ? own : undefined;
  return CANDIDATES.find((p) => fs.existsSync(p));
}

function run(cmd, args) {
  console.error(`ensure-chromium: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return r.status === 0;
}

function install() {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const prefix = isRoot ? [] : ['sudo', '-n'];
  if (!isRoot && spawnSync('sudo', ['-n', 'true']).status !== 0) {
    console.error('ensure-chromium: chromium is missing and this user cannot install it (not root, no passwordless sudo).');
    console.error('  Install it yourself: sudo apt-get update && sudo apt-get install -y chromium');
    return false;
  }
  const apt = (args) => (prefix.length ? run(prefix[0], [...prefix.slice(1), 'apt-get', ...args]) : run('apt-get', args));
  return apt(['update']) && apt(['install', '-y', '--no-install-recommends', 'chromium']);
}

function main() {
  let exe = found();
  if (!exe && !process.env.DEEPLAB_CHROMIUM) {
    install();
    exe = found();
  }
  if (!exe) {
    console.error('ensure-chromium: no chromium executable found');
    process.exit(1);
  }
  console.log(exe);
}

if (require.main === module) main();
module.exports = { found };
