#!/usr/bin/env bash
# Installs the packed package into fresh folders with npm 10 and npm 11, as a user would, and says
# whether onnxruntime-node survived (its install script downloads the CUDA provider; without the
# network it fails and npm drops the optional package). Each npm runs twice: with no settings, and
# with `onnxruntime-node-install=skip` in the folder's .npmrc (what the README tells offline users).
# Usage: bash scripts/check-install.sh   (needs the npm registry; works in a temporary folder outside
# the checkout, where require() cannot find this checkout's own node_modules)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/npm10"
npm run build >/dev/null
tgz=$(npm pack --silent --pack-destination "$out")
npm install --silent --no-audit --no-fund --prefix "$out/npm10" npm@10 >/dev/null
for npmv in 10 11; do
  npm_bin=npm; [ "$npmv" = 10 ] && npm_bin="$out/npm10/node_modules/.bin/npm"
  for mode in default skip; do
    app="$out/app-npm$npmv-$mode"
    mkdir -p "$app" && echo '{"name":"app","version":"1.0.0","private":true}' >"$app/package.json"
    [ "$mode" = skip ] && echo 'onnxruntime-node-install=skip' >"$app/.npmrc"
    rc=0; (cd "$app" && "$npm_bin" install --no-audit --no-fund "$out/$tgz" >install.log 2>&1) || rc=$?
    ort=$(cd "$app" && node -e "try{console.log('onnxruntime-node '+require('onnxruntime-node').env.versions.node)}catch(e){console.log('no onnxruntime-node (inference falls back to tfjs)')}")
    echo "npm $("$npm_bin" --version) $mode: install exit $rc, $ort"
  done
done
