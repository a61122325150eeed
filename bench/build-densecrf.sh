#!/bin/sh
# Builds Krähenbühl's densecrf (version 2) C++ with bench/densecrf-driver.cpp into
# test-output/densecrf-driver, for bench/crf.ts --cpp. The densecrf sources are not part of
# this package: give the path of a local copy, either a densecrf folder (holding src/ and
# include/) or a git directory of pydensecrf (e.g. the mirror `fetch github:lucasb-eyer/pydensecrf`
# leaves), whose pydensecrf/densecrf is extracted into test-output/densecrf-src.
# Usage: sh bench/build-densecrf.sh <densecrf folder | pydensecrf git dir>
set -eu
src=${1:?usage: sh bench/build-densecrf.sh <densecrf folder | pydensecrf git dir>}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/test-output"
mkdir -p "$out"
if [ -f "$src/src/permutohedral.cpp" ]; then
  dcrf=$src
else
  rm -rf "$out/densecrf-src"
  mkdir -p "$out/densecrf-src"
  git --git-dir="$src" archive HEAD pydensecrf/densecrf | tar -x -C "$out/densecrf-src"
  dcrf="$out/densecrf-src/pydensecrf/densecrf"
fi
# Single-threaded, as the reference is; -O3 -march=native as its users build it.
g++ -O3 -march=native -DNDEBUG -w -I"$dcrf/include" \
  "$root/bench/densecrf-driver.cpp" \
  "$dcrf/src/densecrf.cpp" "$dcrf/src/labelcompatibility.cpp" "$dcrf/src/pairwise.cpp" \
  "$dcrf/src/permutohedral.cpp" "$dcrf/src/unary.cpp" "$dcrf/src/util.cpp" "$dcrf/src/objective.cpp" \
  -o "$out/densecrf-driver"
echo "$out/densecrf-driver"
