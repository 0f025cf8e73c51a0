#!/usr/bin/env bash
# End-to-end tests of the metricdepth executable: help texts, exit codes,
# error messages that name the file, hand-computed results, and no partial
# outputs. Usage: cli_test.sh METRICDEPTH SHARED_DIR
set -u
MD="$1"
SHARED="${2:-}"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect CODE CMD...: runs CMD, checks its exit code, keeps stdout+stderr in $T/out
expect() {
  local want="$1"; shift
  "$@" >"$T/out" 2>&1; local got=$?
  if [ "$got" -eq "$want" ]; then ok; else bad "exit $got (wanted $want): $*"; sed 's/^/    /' "$T/out" >&2; fi
}
contains() { if grep -q -- "$1" "$T/out"; then ok; else bad "output lacks '$1'"; sed 's/^/    /' "$T/out" >&2; fi; }

# A 16-bit big-endian PGM from a list of values (width = count, height 1).
pgm() { local f="$1"; shift; printf 'P5\n%d 1\n65535\n' "$#" >"$f"
        for v in "$@"; do printf "\\$(printf '%03o' $((v >> 8)))\\$(printf '%03o' $((v & 255)))" >>"$f"; done; }

# --- help and usage
expect 0 "$MD" help
contains "predict"
for c in demo predict run-model bench pairs scale metrics pointcloud convert preview; do
  expect 0 "$MD" "$c" --help
  contains "usage: metricdepth $c"
  expect 0 "$MD" help "$c"
done
expect 2 "$MD" no-such-command
contains "unknown command"
expect 2 "$MD" scale --pred
contains "needs a value"
expect 2 "$MD" scale --bogus 1
contains "unknown option"
expect 2 "$MD" scale --pred a --gt b --method l3
contains "unknown method"
expect 2 "$MD" scale --pred a --gt b --range 2,1

# --- scale: gt = 2 x pred exactly, so every method gives 2 and W1 drops to 0
pgm "$T/pred.pgm" 1000 2000 3000 4000
pgm "$T/gt.pgm" 2000 4000 6000 8000
for m in w1 w2 median lsq loglsq; do
  expect 0 "$MD" scale --pred "$T/pred.pgm" --gt "$T/gt.pgm" --method "$m" --range 0.1,3
  contains "scale         2.000000"
  contains "W1 after      0.000000"
done
# W1 before by hand: mean |p - g| = (1 + 2 + 3 + 4) / 4 = 2.5 m
contains "W1 before     2.500000"
# the range clamps: optimum 2 outside [0.1, 1.5]
expect 0 "$MD" scale --pred "$T/pred.pgm" --gt "$T/gt.pgm" --range 0.1,1.5 --json
contains '"scale":	1.5'

# --- metrics by hand: pred {1,2,3,4}, gt {2,2,2,2} m: AbsRel = (0.5+0+0.5+1)/4 = 0.5
pgm "$T/flat.pgm" 2000 2000 2000 2000
expect 0 "$MD" metrics --pred "$T/pred.pgm" --gt "$T/flat.pgm" --json
contains '"abs_rel":	0.5'
# delta1: max(p/g, g/p) < 1.25 only for p = 2 -> 0.25
contains '"delta1":	0.25'

# --- bad input: clear message naming the file, exit 1
printf 'P5\n4 1\n65535\n\001' >"$T/trunc.pgm"
expect 1 "$MD" scale --pred "$T/trunc.pgm" --gt "$T/gt.pgm"
contains "trunc.pgm"
expect 1 "$MD" metrics --pred "$T/missing.npy" --gt "$T/gt.pgm"
contains "missing.npy"
pgm "$T/zeros.pgm" 0 0 0 0
expect 1 "$MD" scale --pred "$T/pred.pgm" --gt "$T/zeros.pgm"
contains "valid"

# --- convert and point cloud: outputs exist and nothing partial is left behind
expect 0 "$MD" convert "$T/pred.pgm" -o "$T/pred.npy"
expect 0 "$MD" scale --pred "$T/pred.npy" --gt "$T/gt.pgm" --range 0.1,3
contains "scale         2.000000"
expect 0 "$MD" pointcloud --depth "$T/pred.pgm" --intrinsics 1,1,0,0 -o "$T/p.ply"
if head -c 200 "$T/p.ply" | grep -q "element vertex 4"; then ok; else bad "ply vertex count"; fi
expect 1 "$MD" convert "$T/trunc.pgm" -o "$T/never.npy"
if [ ! -e "$T/never.npy" ] && ! ls "$T" | grep -q tmp; then ok; else bad "partial output left behind"; fi

# --- with the shared data: pair detection and the real model
if [ -n "$SHARED" ] && [ -d "$SHARED/data" ]; then
  expect 0 "$MD" pairs "$SHARED"/data/* -o "$T/pairs.txt"
  contains "total: 366 pairs"
  n=$(grep -vc '^#' "$T/pairs.txt"); [ "$n" -eq 366 ] && ok || bad "pairs.txt has $n lines"
  model="$SHARED/models/fastdepth/fastdepth_7.onnx"
  if [ -f "$model" ]; then
    img="$SHARED/data/nyu_demo_metric3d/rgb/rgb_00000.jpg"
    cp "$img" "$T/good.jpg"
    head -c 3000 "$img" >"$T/broken.jpg"
    expect 3 "$MD" predict --model "$model" "$T/good.jpg" "$T/broken.jpg" -o "$T/pred" --ply
    contains "broken.jpg"
    for f in good.depth.png good.depth.npy good.preview.png good.ply; do
      [ -s "$T/pred/$f" ] && ok || bad "missing $f"
    done
    if ls "$T/pred" | grep -q broken; then bad "output written for broken image"; else ok; fi
    expect 0 "$MD" demo --model "$model" -o "$T/demo"
    contains "oracle W1 scale"
    expect 0 "$MD" predict --model "$model" "$T/good.jpg" -o "$T/oracle" --scale oracle \
      --gt "$SHARED/data/nyu_demo_metric3d/depth/sync_depth_00000.png"
    contains "oracle scale"
  fi
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
