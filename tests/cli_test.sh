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
    contains "good.jpg: scale [0-9.]* (oracle"
    grep -q '"source":[[:space:]]*"oracle"' "$T/oracle/good.json" && ok || bad "sidecar lacks the oracle source"
    expect 2 "$MD" predict --model "$model" "$T/good.jpg" -o "$T/oracle" \
      --gt "$SHARED/data/nyu_demo_metric3d/depth/sync_depth_00000.png"
    contains "--gt goes with --scale oracle"
  fi
fi

# --- adaptive scaling: fit-scales, train, predict --scale-model (issue 5)
for c in fit-scales train; do
  expect 0 "$MD" "$c" --help
  contains "usage: metricdepth $c"
done
expect 2 "$MD" fit-scales --data "$T" 
contains "-o FILE"
expect 2 "$MD" fit-scales --data "$T" -o "$T/x.csv" --trim 90,10
contains "--trim"
expect 2 "$MD" train --scales "$T/x.csv"
expect 2 "$MD" train --scales "$T/x.csv" -o "$T/x.safetensors" --arch huge
printf 'rgb,depth,divisor,scale,log_scale,w1_before,w1_after,abs_rel_before,rmse_before,delta1_before,abs_rel_after,rmse_after,delta1_after\na.jpg,a.png,1000,2,0.6931,0,0,0,0,0,0,0,0\nb.jpg,b.png,1000,x,0,0,0,0,0,0,0,0,0\n' >"$T/badscales.csv"
expect 1 "$MD" train --scales "$T/badscales.csv" -o "$T/never.safetensors"
contains "badscales.csv:3:"
[ ! -e "$T/never.safetensors" ] && ok || bad "model written from a bad CSV"
if [ -n "$SHARED" ] && [ -f "$SHARED/models/fastdepth/fastdepth_7.onnx" ] &&
   [ -d "$SHARED/data/nyu_demo_metric3d" ]; then
  model="$SHARED/models/fastdepth/fastdepth_7.onnx"
  nyu="$SHARED/data/nyu_demo_metric3d"
  mkdir -p "$T/fit"
  for n in 00000 00050 00100; do
    echo "$nyu/rgb/rgb_$n.jpg $nyu/depth/sync_depth_$n.png 1000"
  done >"$T/fit/pairs.txt"
  expect 0 "$MD" fit-scales --data "$T/fit/pairs.txt" --model "$model" -o "$T/fit/scales.csv"
  contains "oracle scale s\*: median"
  rows=$(tail -n +2 "$T/fit/scales.csv" | grep -c .)
  [ "$rows" -eq 3 ] && ok || bad "scales.csv has $rows rows, wanted 3"
  if awk -F, 'NR > 1 && !($4 >= 0.1 && $4 <= 2) { exit 1 }' "$T/fit/scales.csv"; then ok
  else bad "a scale outside [0.1, 2]"; fi
  if awk -F, 'NR > 1 && ($4 < 0.1 || $5 < -2.31 || $5 > 0.7) { exit 1 }' "$T/fit/scales.csv"; then ok
  else bad "log_scale outside [ln 0.1, ln 2]"; fi
  n=$(ls "$T/fit/.metricdepth-cache" | grep -c '\.npy$')
  [ "$n" -eq 3 ] && ok || bad "cache has $n predictions, wanted 3"
  expect 0 "$MD" fit-scales --data "$T/fit/pairs.txt" --model "$model" -o "$T/fit/again.csv" --jobs 2
  contains "3 of 3 predictions from the cache"
  cmp -s "$T/fit/scales.csv" "$T/fit/again.csv" && ok || bad "the cached re-run wrote another CSV"
  # one corrupt image, one depth of another size: both reported and skipped, exit 3
  head -c 2000 "$nyu/rgb/rgb_00050.jpg" >"$T/fit/broken.jpg"
  { echo "$nyu/rgb/rgb_00000.jpg $nyu/depth/sync_depth_00000.png"
    echo "broken.jpg $nyu/depth/sync_depth_00050.png"
    echo "$nyu/rgb/rgb_00100.jpg $nyu/depth/sync_depth_00100.png"
    echo "$nyu/rgb/rgb_00050.jpg $SHARED/data/kitti_demo_metric3d/depth/$(ls "$SHARED/data/kitti_demo_metric3d/depth" | head -1) 256"
  } >"$T/fit/bad.txt"
  expect 3 "$MD" fit-scales --data "$T/fit/bad.txt" --model "$model" -o "$T/fit/partial.csv"
  contains "broken.jpg"
  contains "size mismatch"
  rows=$(tail -n +2 "$T/fit/partial.csv" | grep -c .)
  [ "$rows" -eq 2 ] && ok || bad "partial.csv has $rows rows, wanted 2"
  grep -q "rgb_00000.jpg" "$T/fit/partial.csv" && grep -q "rgb_00100.jpg" "$T/fit/partial.csv" && ok ||
    bad "the good pairs are missing from partial.csv"
  # the default architecture: the encoder predictor (features from the cache
  # fit-scales filled, or computed)
  expect 0 "$MD" train --scales "$T/fit/scales.csv" --model "$model" -o "$T/fit/enc.safetensors"
  contains "encoder scale model, 7280 features, 3 training images"
  contains "alpha 10 (the default"
  contains "gate: t0"
  [ ! -e "$T/fit/enc.log.csv" ] && ok || bad "the encoder wrote a CNN training log"
  expect 2 "$MD" train --scales "$T/fit/scales.csv" --epochs 3 -o "$T/fit/never.safetensors"
  contains "CNN options"
  expect 2 "$MD" train --scales "$T/fit/scales.csv" --arch compact --alpha 3 -o "$T/fit/never.safetensors"
  # a training image is near its own features: some weight; a far input:
  # predict reports the distance and the gate's decision in the sidecar
  expect 0 "$MD" predict --model "$model" --scale-model "$T/fit/enc.safetensors" \
    "$nyu/rgb/rgb_00050.jpg" -o "$T/enc"
  contains "rgb_00050.jpg: scale [0-9.]* (adaptive, predicted ln s [-+][0-9.]* sd [0-9.]*, distance [0-9.]*, confidence"
  for k in '"log_scale_sd":[[:space:]]*[0-9]' '"distance":[[:space:]]*[0-9]' '"confidence":' '"applied":'; do
    grep -q "$k" "$T/enc/rgb_00050.json" && ok || bad "sidecar lacks $k"
  done
  # --ungated applies the prediction as it is: the scale is exp(predicted ln s)
  expect 0 "$MD" predict --model "$model" --scale-model "$T/fit/enc.safetensors" --ungated \
    "$nyu/rgb/rgb_00050.jpg" -o "$T/enc2"
  ls_pred=$(sed -n 's/.*"predicted_log_scale":[[:space:]]*\([-0-9.e]*\).*/\1/p' "$T/enc2/rgb_00050.json")
  sc=$(sed -n 's/.*"scale":[[:space:]]*\([-0-9.e]*\),*$/\1/p' "$T/enc2/rgb_00050.json" | head -1)
  if awk -v l="$ls_pred" -v s="$sc" 'BEGIN { d = exp(l) - s; exit !(s > 0 && d < 1e-6 && d > -1e-6) }'; then ok
  else bad "ungated scale $sc is not exp($ls_pred)"; fi
  # the encoder refuses a base network without its features
  expect 1 "$MD" predict --model "$SHARED/reference/da2/tiny/model.safetensors" --scale adaptive \
    --scale-model "$T/fit/enc.safetensors" "$nyu/rgb/rgb_00050.jpg" -o "$T/enc3"
  contains "encoder features"
  # train two epochs on the three pairs
  expect 0 "$MD" train --scales "$T/fit/scales.csv" --arch compact --epochs 2 --model "$model" \
    --threads 2 -o "$T/fit/scale.safetensors"
  contains "MAE"
  [ -s "$T/fit/scale.safetensors" ] && ok || bad "no model file"
  rows=$(tail -n +2 "$T/fit/scale.log.csv" | grep -c .)
  [ "$rows" -eq 2 ] && ok || bad "scale.log.csv has $rows rows, wanted 2"
  head -1 "$T/fit/scale.log.csv" | grep -qx "epoch,train_loss,val_loss" && ok || bad "log header"
  [ "$(head -c 4 "$T/fit/scale.loss.png" | tail -c 3)" = "PNG" ] && ok || bad "no loss PNG"
  expect 0 "$MD" predict --model "$model" --scale-model "$T/fit/scale.safetensors" \
    "$nyu/rgb/rgb_00000.jpg" -o "$T/adaptive"
  contains "rgb_00000.jpg: scale [0-9.]* (adaptive"
  grep -q '"source":[[:space:]]*"adaptive"' "$T/adaptive/rgb_00000.json" && ok || bad "sidecar lacks the adaptive source"
  [ -s "$T/adaptive/rgb_00000.depth.npy" ] && ok || bad "no adaptive depth"
  expect 2 "$MD" predict --model "$model" --scale none --scale-model "$T/fit/scale.safetensors" \
    "$nyu/rgb/rgb_00000.jpg" -o "$T/adaptive"
  # the test-set summary with the scale CNN: the adaptive columns
  expect 0 "$MD" fit-scales --data "$T/fit/pairs.txt" --model "$model" \
    --scale-model "$T/fit/scale.safetensors" -o "$T/fit/eval.csv"
  contains "gap closed"
  head -1 "$T/fit/eval.csv" | grep -q ",pred_log_scale,abs_rel_adaptive,rmse_adaptive,delta1_adaptive$" &&
    ok || bad "eval.csv lacks the adaptive columns"
fi

# --- eval: the evaluation report (issue 6)
expect 0 "$MD" eval --help
contains "usage: metricdepth eval"
expect 2 "$MD" eval -o "$T/ev"
contains "give the data"
expect 2 "$MD" eval --data "$T" --split half -o "$T/ev"
contains "fraction:F:SEED"
expect 2 "$MD" eval --data "$T" --test "$T" --split fraction:0.5:1 -o "$T/ev"
expect 2 "$MD" eval --data "$T" --test "$T" --protocol kitti -o "$T/ev"
if [ -n "$SHARED" ] && [ -f "$SHARED/models/fastdepth/fastdepth_7.onnx" ] &&
   [ -d "$SHARED/data/nyu_demo_metric3d" ]; then
  model="$SHARED/models/fastdepth/fastdepth_7.onnx"
  nyu="$SHARED/data/nyu_demo_metric3d"
  mkdir -p "$T/ev"
  K="518.8579 519.46961 325.58245 253.73617"
  for n in 00050 00100; do echo "$nyu/rgb/rgb_$n.jpg $nyu/depth/sync_depth_$n.png 1000 $K"; done >"$T/ev/train.txt"
  echo "$nyu/rgb/rgb_00000.jpg $nyu/depth/sync_depth_00000.png 1000 $K" >"$T/ev/test.txt"
  smodel=""
  [ -f "$T/fit/scale.safetensors" ] && smodel="$T/fit/scale.safetensors"
  [ -z "$smodel" ] && [ -f "$(dirname "$0")/../data/scale_models/fastdepth_7.scale.safetensors" ] &&
    smodel="$(dirname "$0")/../data/scale_models/fastdepth_7.scale.safetensors"
  if [ -n "$smodel" ]; then
    expect 0 "$MD" eval --data "$T/ev/train.txt" --test "$T/ev/test.txt" --model "$model" \
      --scale-model "$smodel" --panels 1 --threads 2 -o "$T/ev/r1"
    contains "gap closed"
    for f in report.md index.html per_image.csv summary.json fig/panel_train_1.png \
             fig/panel_test_1.png fig/clouds_test.png fig/scatter.png; do
      [ "$(head -c 4 "$T/ev/r1/$f" | wc -c)" -eq 4 ] && ok || bad "eval did not write $f"
    done
    [ ! -e "$T/ev/r1/fig/panel_train_2.png" ] && ok || bad "--panels 1 wrote a second panel"
    [ "$(head -c 4 "$T/ev/r1/fig/clouds_test.png" | tail -c 3)" = "PNG" ] && ok || bad "clouds not a PNG"
    if [ -f "${smodel%.safetensors}.log.csv" ]; then
      [ -s "$T/ev/r1/fig/loss.png" ] && ok || bad "no loss figure from the training log"
    fi
    grep -q "^| Training set | 2 |" "$T/ev/r1/report.md" && ok || bad "Table 1 lacks the train row"
    grep -q "^| adaptive scale |" "$T/ev/r1/report.md" && ok || bad "Table 2 lacks the adaptive rows"
    grep -q "^| gated adaptive scale |" "$T/ev/r1/report.md" && ok || bad "Table 2 lacks the gated rows"
    head -1 "$T/ev/r1/per_image.csv" | grep -q "gate_weight" && ok || bad "per_image.csv lacks the gate weight"
    grep -q "^| constant scale [0-9.]* |" "$T/ev/r1/report.md" && ok || bad "Table 2 lacks the constant-scale baseline"
    grep -q '<img src="fig/scatter.png"' "$T/ev/r1/index.html" && ok || bad "index.html lacks the scatter"
    [ "$(grep -c '^train,' "$T/ev/r1/per_image.csv")" -eq 2 ] && ok || bad "per_image.csv train rows"
    [ "$(grep -c '^test,' "$T/ev/r1/per_image.csv")" -eq 1 ] && ok || bad "per_image.csv test rows"
    # the oracle scale of the test pair agrees with 'metricdepth scale' on the same prediction
    "$MD" predict --model "$model" --scale none "$nyu/rgb/rgb_00000.jpg" -o "$T/ev/pred" >/dev/null 2>&1
    want=$("$MD" scale --pred "$T/ev/pred/rgb_00000.depth.npy" --gt "$nyu/depth/sync_depth_00000.png" |
           awk '/^scale/ { print $2 }')
    got=$(awk -F, '/^test,/ { print $4 }' "$T/ev/r1/per_image.csv")
    if awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(a > 0 && d < 1e-4 && d > -1e-4) }'; then ok
    else bad "oracle scale $got in per_image.csv, 'scale' says $want"; fi
    # a re-run takes every base prediction from the cache
    expect 0 "$MD" eval --data "$T/ev/train.txt" --test "$T/ev/test.txt" --model "$model" \
      --scale-model "$smodel" --panels 0 -o "$T/ev/r1"
    grep -q "3 base predictions from the cache" "$T/ev/r1/report.md" && ok || bad "re-run missed the cache"
  fi
  # no scale model: no adaptive columns, and the report says so; a random split
  expect 0 "$MD" eval --data "$T/ev/train.txt" "$T/ev/test.txt" --split fraction:0.34:7 \
    --model "$model" --panels 0 -o "$T/ev/r2"
  grep -q "adaptive columns are omitted" "$T/ev/r2/report.md" && ok || bad "report does not say adaptive is omitted"
  ! grep -q "adaptive" "$T/ev/r2/per_image.csv" && ok || bad "adaptive columns without a scale model"
  [ "$(grep -c '^test,' "$T/ev/r2/per_image.csv")" -eq 1 ] && ok || bad "split: one test pair wanted"
  [ ! -e "$T/ev/r2/fig/scatter.png" ] && ok || bad "scatter without a scale model"
  # eigen: the same numbers with and without the cache, and 'metrics' on the
  # .npy that predict writes agrees with eval (the unseen border is left out,
  # not counted as 1e-3 m)
  expect 0 "$MD" eval --data "$T/ev/train.txt" --test "$T/ev/test.txt" --model "$model" \
    --protocol eigen --panels 0 -o "$T/ev/e1"
  expect 0 "$MD" eval --data "$T/ev/train.txt" --test "$T/ev/test.txt" --model "$model" \
    --protocol eigen --panels 0 -o "$T/ev/e2" --cache "$T/ev/e1/.metricdepth-cache"
  grep -q "3 base predictions from the cache" "$T/ev/e2/report.md" && ok || bad "eigen re-run missed the cache"
  expect 0 "$MD" eval --data "$T/ev/train.txt" --test "$T/ev/test.txt" --model "$model" \
    --protocol eigen --panels 0 --no-cache -o "$T/ev/e3"
  for r in e2 e3; do
    cmp -s "$T/ev/e1/per_image.csv" "$T/ev/$r/per_image.csv" && ok || bad "eigen per_image.csv differs in $r"
  done
  [ -s "$T/ev/pred/rgb_00000.depth.npy" ] ||
    "$MD" predict --model "$model" --scale none "$nyu/rgb/rgb_00000.jpg" -o "$T/ev/pred" >/dev/null 2>&1
  expect 0 "$MD" metrics --pred "$T/ev/pred/rgb_00000.depth.npy" \
    --gt "$nyu/depth/sync_depth_00000.png" --protocol eigen --json
  want=$(awk -F'[:,]' '/"abs_rel"/ { gsub(/[ \t]/, "", $2); print $2 }' "$T/out")
  col=$(head -1 "$T/ev/e1/per_image.csv" | tr , '\n' | grep -nx abs_rel_unscaled | cut -d: -f1)
  got=$(awk -F, -v c="$col" '/^test,/ { print $c }' "$T/ev/e1/per_image.csv")
  if awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(a > 0 && d < 1e-6 && d > -1e-6) }'; then ok
  else bad "eigen AbsRel: metrics on the .npy says $want, eval says $got"; fi
  # a bad pair is reported and skipped: exit 3, the rest evaluated
  head -c 2000 "$nyu/rgb/rgb_00050.jpg" >"$T/ev/broken.jpg"
  { cat "$T/ev/train.txt"; echo "broken.jpg $nyu/depth/sync_depth_00050.png"; } >"$T/ev/bad.txt"
  expect 3 "$MD" eval --data "$T/ev/bad.txt" --test "$T/ev/test.txt" --model "$model" --panels 0 \
    -o "$T/ev/r3"
  contains "broken.jpg"
  [ "$(grep -c '^train,' "$T/ev/r3/per_image.csv")" -eq 2 ] && ok || bad "bad pair: the good ones are missing"
fi

# --- bad-data semantics (docs/robustness.md): empty datasets, mismatched sizes
mkdir -p "$T/empty"
expect 0 "$MD" pairs "$T/empty"
contains "total: 0 pairs"
expect 1 "$MD" fit-scales --data "$T/empty" -o "$T/empty.csv"
contains "no RGB-D pairs"
[ ! -e "$T/empty.csv" ] && ok || bad "fit-scales wrote a CSV for an empty dataset"
pgm "$T/five.pgm" 1000 2000 3000 4000 5000
expect 1 "$MD" metrics --pred "$T/pred.pgm" --gt "$T/five.pgm"
contains "4x1"
contains "5x1"
expect 1 "$MD" scale --pred "$T/pred.pgm" --gt "$T/five.pgm"

# --- under a memory limit (ulimit -v) predict finishes or fails cleanly, never hangs:
# the kernels are metricdepth's own and start no BLAS thread pool (issue 14). The
# sanitizer builds reserve terabytes of address space, so only a plain build runs this.
fd="$SHARED/models/fastdepth/fastdepth_7.onnx"
img="$SHARED/data/nyu_demo_metric3d/rgb/rgb_00000.jpg"
if [ -f "$fd" ] && [ -f "$img" ] && ! ldd "$MD" 2>/dev/null | grep -q -E 'libasan|libtsan'; then
  ( ulimit -v 150000; timeout 120 "$MD" predict --model "$fd" --scale none "$img" -o "$T/lim" ) \
    >"$T/out" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ] && [ -f "$T/lim/rgb_00000.depth.png" ]; then ok
  else bad "predict under ulimit -v 150000: exit $rc (124 = hung)"; sed 's/^/    /' "$T/out" >&2; fi
  ( ulimit -v 40000; timeout 120 "$MD" predict --model "$fd" --scale none "$img" -o "$T/lim2" ) \
    >"$T/out" 2>&1
  rc=$?
  if [ "$rc" -eq 1 ] && grep -q "out of memory" "$T/out"; then ok
  else bad "predict under ulimit -v 40000: exit $rc (wanted 1, out of memory)"; sed 's/^/    /' "$T/out" >&2; fi
  # --precision: bf16 is for Depth Anything V2; an ONNX model says so (exit 1)
  expect 1 "$MD" predict --model "$fd" --precision bf16 "$img" -o "$T/bf"
  contains "bf16"
  expect 2 "$MD" predict --model "$fd" --precision fp64 "$img" -o "$T/bf"
  contains "fp32, bf16 or auto"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
