#!/bin/sh
# Builds the CRF of an earlier commit into test-output/crf-baseline/, for
# `node dist/bench/crf.js --baseline test-output/crf-baseline/dist/crf/dense-crf.js` (before/after
# figures in one interleaved run).
# Usage: sh bench/build-crf-baseline.sh <commit>
set -eu
commit=${1:?usage: sh bench/build-crf-baseline.sh <commit>}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/test-output/crf-baseline"
rm -rf "$out"
mkdir -p "$out"
git -C "$root" archive "$commit" lib | tar -x -C "$out"
cd "$out"
npx tsc --target ES2022 --module commonjs --moduleResolution node --esModuleInterop --skipLibCheck --types node \
  --outDir dist lib/crf/dense-crf.ts
echo "$out/dist/crf/dense-crf.js"
