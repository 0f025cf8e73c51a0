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
for c in demo predict run-model bench pairs scale metrics pointcloud convert preview merge; do
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
if head -c 600 "$T/p.ply" | grep -q "element vertex 4"; then ok; else bad "ply vertex count"; fi
expect 1 "$MD" convert "$T/trunc.pgm" -o "$T/never.npy"
if [ ! -e "$T/never.npy" ] && ! ls "$T" | grep -q tmp; then ok; else bad "partial output left behind"; fi

# A float32 .npy: npy FILE "SHAPE" COUNT zero|nan (the shape as Python writes it, "(1, 3, 8, 8)").
npy() {
  local f="$1" shape="$2" n="$3" fill="$4"
  local dict="{'descr': '<f4', 'fortran_order': False, 'shape': $shape, }"
  local total=$(( (10 + ${#dict} + 1 + 63) / 64 * 64 ))
  local pad=$(( total - 10 - ${#dict} - 1 ))
  { printf '\223NUMPY\001\000'; printf "\\$(printf '%03o' $(( (total - 10) & 255 )))\\$(printf '%03o' $(( (total - 10) >> 8 )))"
    printf '%s%*s\n' "$dict" "$pad" ''
    if [ "$fill" = nan ]; then for ((i = 0; i < n; i++)); do printf '\000\000\300\177'; done
    else head -c $((4 * n)) /dev/zero; fi; } >"$f"
}

# A black 1-bit greyscale PNG of W x H pixels, built with gzip (its deflate
# stream and its CRC-32): png_black FILE W H
png_black() {
  local f="$1" w="$2" h="$3" row=$(( 1 + ($2 + 7) / 8 ))
  local n=$(( row * h ))
  be32() { printf "\\$(printf '%03o' $(( ($1 >> 24) & 255 )))\\$(printf '%03o' $(( ($1 >> 16) & 255 )))\\$(printf '%03o' $(( ($1 >> 8) & 255 )))\\$(printf '%03o' $(( $1 & 255 )))"; }
  crc() { gzip -c | tail -c 8 | head -c 4 | od -An -tu4 | tr -d ' '; } # CRC-32 (little-endian in gzip)
  chunk() { local type="$1" data="$2"; be32 "$(wc -c <"$data")"; { printf '%s' "$type"; cat "$data"; } >"$data.c"
            cat "$data.c"; be32 "$(crc <"$data.c")"; rm -f "$data.c"; }
  local d; d=$(mktemp -d)
  { be32 "$w"; be32 "$h"; printf '\001\000\000\000\000'; } >"$d/ihdr"
  # zlib = 78 9c, gzip's raw deflate (minus its 10-byte header and 8-byte trailer), adler-32
  # (for n zero bytes: a = 1, b = n mod 65521)
  { printf '\170\234'; head -c "$n" /dev/zero | gzip -c -n | tail -c +11 | head -c -8
    be32 $(( ((n % 65521) << 16) | 1 )); } >"$d/idat"
  : >"$d/iend"
  { printf '\211PNG\r\n\032\n'; chunk IHDR "$d/ihdr"; chunk IDAT "$d/idat"; chunk IEND "$d/iend"; } >"$f"
  rm -rf "$d"
}

# Sanitizer builds reserve terabytes of shadow memory: no ulimit -v for them.
asan=0; ldd "$MD" 2>/dev/null | grep -q 'libasan' && asan=1

# --- small files claiming huge images: refused by area before decoding
png_black "$T/huge.png" 16384 16384
[ "$(wc -c <"$T/huge.png")" -lt 40000 ] && ok || bad "the huge PNG is not small"
if [ "$asan" -eq 0 ]; then
  expect 1 bash -c 'ulimit -v 300000; exec "$@"' sh "$MD" pointcloud --depth "$T/pred.pgm" \
    --rgb "$T/huge.png" --intrinsics 1,1,0,0 -o "$T/never.ply"
else
  expect 1 "$MD" pointcloud --depth "$T/pred.pgm" --rgb "$T/huge.png" --intrinsics 1,1,0,0 -o "$T/never.ply"
fi
contains "huge.png: image of 16384x16384 pixels is larger than"

# --- train: running out of memory is an error, never an unreadable image to skip
png_black "$T/big.png" 16384 8192
{ echo "rgb,depth,divisor,scale,log_scale,w1_before,w1_after,abs_rel_before,rmse_before,delta1_before,abs_rel_after,rmse_after,delta1_after"
  echo "$T/big.png,a.png,1000,2,0.6931,0,0,0,0,0,0,0,0"; } >"$T/big.csv"
if [ "$asan" -eq 0 ]; then
  expect 1 bash -c 'ulimit -v 400000; exec "$@"' sh "$MD" train --scales "$T/big.csv" \
    -o "$T/never.safetensors" --arch compact --model fastdepth_7.onnx --epochs 1 --threads 1
  contains "out of memory"
  ! grep -q "skipped" "$T/out" && ok || bad "train skipped an image it had no memory for"
  [ ! -e "$T/never.safetensors" ] && ok || bad "train wrote a model after running out of memory"
fi

# --- a FIFO (or a folder) as input: refused at once, never waited on
mkfifo "$T/fifo.pgm"
expect 1 timeout 20 "$MD" metrics --pred "$T/fifo.pgm" --gt "$T/gt.pgm"
contains "fifo.pgm: not a regular file (a FIFO)"
expect 1 timeout 20 "$MD" scale --pred "$T/pred.pgm" --gt "$T"
contains "not a regular file (a folder)"
expect 1 timeout 20 "$MD" run-model --model "$T/fifo.pgm" --input "$T/fifo.pgm" -o "$T/never.npy"
contains "FIFO"

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
    # a FIFO among the inputs is skipped at once and the batch goes on
    expect 3 timeout 60 "$MD" predict --model "$model" "$T/fifo.pgm" "$T/good.jpg" -o "$T/pred_fifo"
    contains "fifo.pgm"
    [ -s "$T/pred_fifo/good.depth.png" ] && ok || bad "the batch stopped at the FIFO"
    # run-model: a tensor of the wrong shape is bad input naming the .npy (exit 1, not usage)
    npy "$T/small.npy" "(1, 3, 10, 10)" 300 zero
    expect 1 "$MD" run-model --model "$model" --input "$T/small.npy" -o "$T/never.npy"
    contains "small.npy"
    contains "1x3x224x224"
    [ ! -e "$T/never.npy" ] && ok || bad "run-model wrote an output for a wrong shape"
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

# --- an all-NaN input never becomes finite depth (Depth Anything V2, tiny reference weights)
da2="$SHARED/reference/da2/tiny/model.safetensors"
if [ -n "$SHARED" ] && [ -f "$da2" ]; then
  npy "$T/nan.npy" "(1, 3, 28, 28)" 2352 nan
  expect 0 "$MD" run-model --model "$da2" --input "$T/nan.npy" -o "$T/nan_out.npy"
  finite=$(tail -c $((4 * 28 * 28)) "$T/nan_out.npy" | od -An -v -tf4 | tr -s ' ' '\n' |
           grep -v '^$' | grep -vic nan)
  [ "$finite" -eq 0 ] && ok || bad "$finite finite depth values from an all-NaN input"
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
  # KITTI against an indoor network: every oracle scale on the range limit,
  # counted and warned about; a wider range shows the optimum beyond it
  if [ -d "$SHARED/data/kitti_demo_metric3d" ]; then
    expect 0 "$MD" fit-scales --data "$SHARED/data/kitti_demo_metric3d" --model "$model" \
      -o "$T/fit/kitti.csv"
    contains "range limit \[0.1, 2\] for 3 of 3 pairs"
    expect 0 "$MD" fit-scales --data "$SHARED/data/kitti_demo_metric3d" --model "$model" \
      --range 0.1,50 -o "$T/fit/kitti2.csv"
    if awk -F, 'NR > 1 && $4 <= 2 { exit 1 }' "$T/fit/kitti2.csv"; then ok; else bad "KITTI s* within 2 with a wide range"; fi
  fi
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
  # --precision bf16 shares a cache with fp32 but not its entries (bf16 evaluations
  # once failed on their cache key), and a re-run takes its own from it
  for p in fp32 bf16 bf16; do
    expect 0 "$MD" eval --data "$T/ev/train.txt" --test "$T/ev/test.txt" --model "$model" \
      --precision $p --cache "$T/ev/cache" --panels 0 -o "$T/ev/r_$p"
  done
  grep -q "(3 base predictions from the cache)" "$T/ev/r_bf16/report.md" && ok ||
    bad "bf16 re-run missed its cache entries"
  [ "$(ls "$T/ev/cache" | grep -c '\.npy$')" -eq 6 ] && ok || bad "fp32 and bf16 cache entries: 6 wanted"
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
  # a full disk (a 100 KB tmpfs in a private mount namespace): the figures do
  # not fit, so the report is incomplete: exit 1, no temporaries left
  mkdir -p "$T/ev/full"
  if unshare -rm sh -c 'mount -t tmpfs -o size=100k tmpfs "$1"' sh "$T/ev/full" 2>/dev/null; then
    unshare -rm sh -c 'mount -t tmpfs -o size=100k tmpfs "$1" || exit 99
      "$2" eval --data "$3" --test "$4" --model "$5" --panels 1 --no-cache -o "$1/r"; rc=$?
      ls -a "$1/r" "$1/r/fig"; exit $rc' sh "$T/ev/full" "$MD" "$T/ev/train.txt" \
      "$T/ev/test.txt" "$model" >"$T/out" 2>&1
    got=$?
    [ "$got" -eq 1 ] && ok || { bad "eval onto a full disk: exit $got (wanted 1)"; sed 's/^/    /' "$T/out" >&2; }
    contains "No space left"
    ! grep -q "\.tmp\." "$T/out" && ok || bad "eval left temporaries on the full disk"
  else
    echo "skip: cannot mount a tmpfs in a user namespace (full-disk eval test)" >&2
  fi
  # a bad pair is reported and skipped: exit 3, the rest evaluated
  head -c 2000 "$nyu/rgb/rgb_00050.jpg" >"$T/ev/broken.jpg"
  { cat "$T/ev/train.txt"; echo "broken.jpg $nyu/depth/sync_depth_00050.png"; } >"$T/ev/bad.txt"
  expect 3 "$MD" eval --data "$T/ev/bad.txt" --test "$T/ev/test.txt" --model "$model" --panels 0 \
    -o "$T/ev/r3"
  contains "broken.jpg"
  [ "$(grep -c '^train,' "$T/ev/r3/per_image.csv")" -eq 2 ] && ok || bad "bad pair: the good ones are missing"
fi

# --- anchors, scale maps, sequences (issue 12)
expect 0 "$MD" eval-anchors --help
contains "usage: metricdepth eval-anchors"
expect 2 "$MD" eval-anchors -o "$T/ea"
contains "give at least one dataset"
expect 2 "$MD" eval-anchors --k 0,4 "$T" -o "$T/ea"
contains "whole counts"
expect 2 "$MD" eval-anchors --main 0.5,0.1 "$T" -o "$T/ea"
contains "not one of the"
expect 2 "$MD" predict --scale anchors "$T/x.jpg"
contains "needs --anchors"
expect 2 "$MD" predict --anchors "$T/a.txt" --anchor-fit ransac "$T/x.jpg"
contains "anchor-fit is robust"
expect 2 "$MD" predict --anchors "$T/a.txt" --anchor-fit scale-shift --scale-map "$T/x.jpg"
contains "scale-only"
expect 2 "$MD" predict --anchors "$T/a.txt" --scale none "$T/x.jpg"
contains "go with --scale anchors"
expect 2 "$MD" predict --fps 10 "$T/x.jpg"
contains "go with --sequence"
expect 2 "$MD" predict --anchors "$T/a.txt" --ungated "$T/x.jpg"
contains "--ungated goes with --scale auto or adaptive, not anchors"
expect 2 "$MD" predict --anchors "$T/a.txt" --scale-model "$T/m.safetensors" "$T/x.jpg"
contains "--scale-model goes with --scale auto or adaptive, not anchors"
if [ -n "$SHARED" ] && [ -f "$SHARED/models/fastdepth/fastdepth_7.onnx" ]; then
  model="$SHARED/models/fastdepth/fastdepth_7.onnx"
  cp "$SHARED/data/nyu_demo_metric3d/rgb/rgb_00000.jpg" "$T/anc.jpg"
  expect 0 "$MD" predict --model "$model" --scale none "$T/anc.jpg" -o "$T/anc0"
  # every valid pixel an anchor at exactly 1.5 x the network's depth: the
  # depth PNG (mm) read with divisor 1000/1.5 is 1.5 x the depth in metres
  expect 0 "$MD" convert "$T/anc0/anc.depth.png" --divisor 666.6666666667 -o "$T/anchors.npy"
  for fit in robust median w1 lsq; do
    expect 0 "$MD" predict --model "$model" --anchors "$T/anchors.npy" --anchor-fit "$fit" \
      "$T/anc.jpg" -o "$T/anc1-$fit"
    contains "anc.jpg: scale 1.50[0-9]* (anchors $fit"
  done
  grep -q '"fit":[[:space:]]*"lsq"' "$T/anc1-lsq/anc.json" && ok || bad "sidecar lacks the anchor fit"
  expect 0 "$MD" predict --model "$model" --anchors "$T/anchors.npy" --anchor-fit scale-shift \
    "$T/anc.jpg" -o "$T/anc2"
  contains "scale 1.50[0-9]* (anchors scale-shift, inverse-depth shift [-+]0.000"
  expect 0 "$MD" predict --model "$model" --anchors "$T/anchors.npy" --scale-map \
    "$T/anc.jpg" -o "$T/anc3"
  contains "pixel-wise scale map"
  grep -q '"log_scale_median":[[:space:]]*0.405' "$T/anc3/anc.json" && ok || bad "scale map median is not ln 1.5"
  # text anchors: errors name the file and line, nothing is written
  printf '# u v depth\n10 10 2.0\n640 10 2.0\n' >"$T/out.txt"
  expect 1 "$MD" predict --model "$model" --anchors "$T/out.txt" "$T/anc.jpg" -o "$T/anc4"
  contains "out.txt:3: anchor at (640, 10) lies outside the 640x480 image"
  [ ! -e "$T/anc4/anc.depth.png" ] && ok || bad "output written despite bad anchors"
  printf '10 10 -2\n' >"$T/neg.txt"
  expect 1 "$MD" predict --model "$model" --anchors "$T/neg.txt" "$T/anc.jpg" -o "$T/anc4"
  contains "neg.txt:1: depth -2 m is not positive"
  printf '300 200 2\n320 240 2\n' >"$T/two.txt"
  expect 1 "$MD" predict --model "$model" --anchors "$T/two.txt" --anchor-fit scale-shift \
    "$T/anc.jpg" -o "$T/anc4"
  contains "needs at least 3"
  # a sequence: one anchor file per frame in a folder; equal frames, equal scales
  mkdir -p "$T/frames" "$T/fanc"
  for i in 1 2 3; do
    cp "$T/anc.jpg" "$T/frames/f$i.jpg"
    printf '320 240 %s\n300 200 %s\n340 260 %s\n' 2.0 2.0 2.0 >"$T/fanc/f$i.txt"
  done
  expect 0 "$MD" predict --model "$model" --sequence --fps 10 --anchors "$T/fanc" \
    "$T/frames/f1.jpg" "$T/frames/f2.jpg" "$T/frames/f3.jpg" -o "$T/seq"
  contains "f3.jpg: scale [0-9.]* (anchors robust, filtered from"
  grep -q '"raw_scale"' "$T/seq/f2.json" && ok || bad "sequence sidecar lacks the raw scale"
  rm "$T/fanc/f2.txt"
  expect 3 "$MD" predict --model "$model" --sequence --anchors "$T/fanc" \
    "$T/frames/f1.jpg" "$T/frames/f2.jpg" "$T/frames/f3.jpg" -o "$T/seq2"
  contains "no anchors for"
  # eval-anchors end to end on three NYU pairs: every file of the report
  expect 0 "$MD" eval-anchors --model "$model" --k 4,16 --noise 0 --outliers 0,0.1 --main 0,0.1 \
    --seeds 1 --seq-k 4 --sequences nyu nyu="$SHARED/data/nyu_demo_metric3d" -o "$T/ea"
  for f in report.md results.csv sequences.csv cells.csv summary.json fig/abs_rel_vs_k_nyu.png; do
    [ -s "$T/ea/$f" ] && ok || bad "eval-anchors did not write $f"
  done
  # the reference rows once per dataset, the fit rows once per condition, K and seed
  [ "$(grep -c '^nyu,,,,oracle,,3,' "$T/ea/results.csv")" -eq 1 ] && ok || bad "eval-anchors: no oracle row"
  [ "$(grep -c '^nyu,0,0.1,16,robust,0,3,' "$T/ea/results.csv")" -eq 1 ] && ok || bad "eval-anchors: no robust row"
  [ "$(wc -l <"$T/ea/cells.csv")" -eq 4 ] && ok || bad "cells.csv: want a header and 3 rows"
  # the image-only rows: nyu held out, the scale models trained on 12 SUN3D pairs
  "$MD" pairs "$SHARED/data/sun3d_studyroom/fragment-1-rgbd-frames" -o "$T/sun.txt" >/dev/null 2>&1
  { grep '^#' "$T/sun.txt"; grep -v '^#' "$T/sun.txt" | head -12; } >"$T/sun12.txt"
  expect 0 "$MD" eval-anchors --model "$model" --k 4 --noise 0 --outliers 0 --main 0,0 --seeds 1 \
    --cells 2x2 nyu="$SHARED/data/nyu_demo_metric3d" sun="$T/sun12.txt" -o "$T/ea2"
  for r in image image_gated image_map image_map_gated; do
    grep -q "^nyu,,,,$r,,3," "$T/ea2/results.csv" && ok || bad "eval-anchors: no $r row for nyu"
  done
fi

# --- predict as users expect it (issue 15): folders, lists, EXIF, KITTI, names, sidecars
expect 0 "$MD" predict --help
contains "--outputs"
expect 2 "$MD" predict --overwirte x.png
contains "did you mean '--overwrite'"
expect 2 "$MD" predict x.png --outputs npy --png-divisor 256
contains "png16 output, which is off"
expect 2 "$MD" predict x.png --ply-stride 4
contains "add --ply"
expect 2 "$MD" predict x.png --fov 60 --intrinsics 500,500,320,240
expect 2 "$MD" predict x.png --range 5,1
expect 2 "$MD" predict x.png --outputs png16,jpeg
contains "unknown output 'jpeg'"
printf 'x' >"$T/notadir"
expect 1 "$MD" predict x.png -o "$T/notadir/out"
contains "notadir"
if grep -q "^model:" "$T/out"; then bad "the model was loaded before the output folder was checked"; else ok; fi
if [ -n "$SHARED" ] && [ -f "$SHARED/models/fastdepth/fastdepth_7.onnx" ] &&
   [ -d "$SHARED/data/kitti_demo_metric3d" ] && [ -d "$SHARED/data/sun3d_studyroom" ]; then
  model="$SHARED/models/fastdepth/fastdepth_7.onnx"
  sun="$SHARED/data/sun3d_studyroom/fragment-1-rgbd-frames"
  nyu="$SHARED/data/nyu_demo_metric3d/rgb/rgb_00000.jpg"
  kitti="$SHARED/data/kitti_demo_metric3d/rgb/$(ls "$SHARED/data/kitti_demo_metric3d/rgb" | head -1)"
  b="$T/batch"
  mkdir -p "$b/seq" "$b/color" "$b/tum" "$T/lists/color"
  i=0
  for f in "$sun"/frame-*.color.png; do
    i=$((i + 1)); [ "$i" -le 17 ] || break
    cp "$f" "$b/seq/"
  done
  cp "$sun/$(ls "$sun" | grep color | sed -n 18p)" "$b/color/1.png"
  cp "$sun/$(ls "$sun" | grep color | sed -n 19p)" "$b/tum/1.png"
  # a portrait phone photo: the landscape JPEG with an EXIF block saying
  # "rotate 90 degrees clockwise to display" (orientation 6) after its SOI
  { head -c 2 "$nyu"
    printf '\377\341\000\042Exif\000\000MM\000\052\000\000\000\010\000\001\001\022\000\003\000\000\000\001\000\006\000\000\000\000\000\000'
    tail -c +3 "$nyu"; } >"$b/portrait.jpg"
  # a list whose "color/1.png" collides with the folder's
  cp "$sun/$(ls "$sun" | grep color | sed -n 20p)" "$T/lists/color/1.png"
  cp "$nyu" "$T/lists/nyu.jpg"
  printf '# two more\ncolor/1.png\n\nnyu.jpg\n' >"$T/lists/more.txt"
  n_in=$(find "$b" -type f | wc -l); [ "$n_in" -eq 20 ] && ok || bad "the folder has $n_in images, not 20"
  expect 0 "$MD" predict --model "$model" --scale none "$b" "$kitti" "$T/lists/more.txt" -o "$T/p1" --ply
  contains "wrote 23 of 23 inputs"
  contains "per second"
  contains "33 % of this 1242x375 image has depth"
  contains "outdoor"
  contains "EXIF orientation 6 applied"
  n=$(find "$T/p1" -name '*.json' | wc -l); [ "$n" -eq 23 ] && ok || bad "$n sidecars, wanted 23"
  for s in batch/color/1 lists/color/1 tum/1 portrait nyu "$(basename "${kitti%.*}")" seq/frame-000935.color; do
    for ext in depth.png depth.npy preview.png ply json; do
      [ -s "$T/p1/$s.$ext" ] && ok || bad "missing $s.$ext"
    done
  done
  grep -q '"image":.*batch/color/1.png' "$T/p1/batch/color/1.json" && grep -q '"image":.*lists/color/1.png' "$T/p1/lists/color/1.json" &&
    ok || bad "the colliding pair's sidecars do not name their own images"
  cmp -s "$T/p1/batch/color/1.depth.npy" "$T/p1/lists/color/1.depth.npy" && bad "the colliding pair has one depth" || ok
  # the portrait photo is upright: 480 wide, 640 high
  grep -q '"exif_orientation":[[:space:]]*6' "$T/p1/portrait.json" && ok || bad "orientation not recorded"
  grep -q '"width":[[:space:]]*480,' "$T/p1/portrait.json" && grep -q '"height":[[:space:]]*640,' "$T/p1/portrait.json" &&
    ok || bad "the portrait photo was not turned upright"
  # square pixels, 60 degrees across 1242 pixels: f = 621 / tan(30 deg) = 1075.60 (by hand)
  k="$T/p1/$(basename "${kitti%.*}")"
  grep -q '"fx":[[:space:]]*1075.60' "$k.json" && grep -q '"fy":[[:space:]]*1075.60' "$k.json" &&
    ok || bad "KITTI intrinsics are not the 60 degree default"
  head -c 600 "$k.ply" | grep -q "comment intrinsics fx 1075.60" && ok || bad "PLY header lacks the intrinsics"
  grep -q '"share_with_depth":[[:space:]]*0.33' "$k.json" && ok || bad "KITTI coverage not recorded"
  [ ! -e "$T/p1/.metricdepth" ] && ok || bad "staging left behind"
  # a re-run resumes (all done); --overwrite redoes atomically
  expect 0 "$MD" predict --model "$model" --scale none "$b" "$kitti" "$T/lists/more.txt" -o "$T/p1" --ply
  contains "23 inputs already done"
  # shards: disjoint, together the whole folder
  for k in 1 2 3; do
    expect 0 "$MD" predict --model "$model" --scale none --shard $k/3 "$b" -o "$T/sh" --outputs json
  done
  n=$(find "$T/sh" -name '*.json' | wc -l); [ "$n" -eq 20 ] && ok || bad "shards wrote $n sets, wanted 20"
  # outputs chosen: PFM and a KITTI-style 16-bit PNG, clipping counted
  expect 0 "$MD" predict --model "$model" --scale none "$kitti" -o "$T/p2" --outputs png16,pfm,json \
    --png-divisor 30000
  contains "clipped"
  ls "$T/p2" | grep -q "depth.npy" && bad "npy written though not asked" || ok
  grep -q '"divisor":[[:space:]]*30000' "$T/p2/$(basename "${kitti%.*}").json" && ok || bad "divisor not recorded"
  expect 0 "$MD" predict --model "$model" --scale none "$nyu" -o "$T/p3" --pred-only --grayscale --side-by-side
  [ "$(ls "$T/p3")" = "rgb_00000.preview.png" ] && ok || bad "--pred-only wrote $(ls "$T/p3")"
  expect 2 "$MD" predict --model "$model" "$nyu" -o "$T/p3" --input-size 518
  contains "applies to Depth Anything V2"

  # --- a killed batch: kill -9 three times, then a re-run completes it; no
  # temporaries, only complete sets (issue 14)
  mkdir -p "$T/kill/in"
  for i in $(seq -w 1 24); do cp "$nyu" "$T/kill/in/img$i.jpg"; done
  for delay in 0.6 0.9 1.3; do
    "$MD" predict --model "$model" --scale none --threads 1 "$T/kill/in" -o "$T/kill/out" >/dev/null 2>&1 &
    pid=$!; sleep "$delay"; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  partial=0
  for f in "$T"/kill/out/*.json; do
    [ -e "$f" ] || continue
    s="${f%.json}"
    for ext in depth.png depth.npy preview.png; do [ -e "$s.$ext" ] || partial=1; done
  done
  for f in "$T"/kill/out/*.depth.png; do [ -e "$f" ] && [ ! -e "${f%.depth.png}.json" ] && partial=1; done
  [ "$partial" -eq 0 ] && ok || bad "a killed batch left an incomplete set"
  expect 0 "$MD" predict --model "$model" --scale none "$T/kill/in" -o "$T/kill/out"
  n=$(ls "$T/kill/out" | grep -c '\.json$'); [ "$n" -eq 24 ] && ok || bad "after the re-run $n sets, wanted 24"
  n=$(ls -A "$T/kill/out" | grep -vc '^img[0-9]*\.\(depth\.png\|depth\.npy\|preview\.png\|json\)$')
  [ "$n" -eq 0 ] && ok || bad "the re-run left $n other files: $(ls -A "$T/kill/out" | grep -v '^img' | head -3)"
  # SIGTERM and SIGINT: finish or drop the image in flight, a summary, 143 / 130
  for sig in TERM INT; do
    rm -rf "$T/kill/sig"
    "$MD" predict --model "$model" --scale none --threads 1 "$T/kill/in" -o "$T/kill/sig" >/dev/null 2>"$T/out" &
    pid=$!
    for w in $(seq 1 300); do ls "$T/kill/sig" 2>/dev/null | grep -q json && break; sleep 0.1; done
    kill -$sig "$pid"; wait "$pid"; got=$?
    want=$([ $sig = TERM ] && echo 143 || echo 130)
    [ "$got" -eq "$want" ] && ok || bad "SIG$sig: exit $got, wanted $want"
    contains "stopped by SIG$sig"
    [ ! -e "$T/kill/sig/.metricdepth" ] && ok || bad "SIG$sig left temporaries"
  done
  # two runs into one folder at once: both finish, every set complete
  mkdir -p "$T/kill/few"
  cp "$T"/kill/in/img0[1-8].jpg "$T/kill/few/"
  "$MD" predict --model "$model" --scale none --overwrite "$T/kill/few" -o "$T/kill/two" >/dev/null 2>&1 &
  p1=$!
  "$MD" predict --model "$model" --scale none --overwrite "$T/kill/few" -o "$T/kill/two" >/dev/null 2>&1
  r2=$?; wait "$p1"; r1=$?
  [ "$r1" -eq 0 ] && [ "$r2" -eq 0 ] && ok || bad "concurrent runs: exits $r1 and $r2"
  n=$(ls "$T/kill/two" | grep -c '\.json$'); [ "$n" -eq 8 ] && ok || bad "concurrent runs: $n sets"
  [ ! -e "$T/kill/two/.metricdepth" ] && ok || bad "concurrent runs left temporaries"

  # --- video in and out, made here with the FFmpeg libraries from SUN3D frames
  expect 0 "$MD" convert "$b"/seq/frame-00093[5-9]*.color.png "$b"/seq/frame-000940.color.png -o "$T/vid/clip.mp4" --fps 5
  contains "wrote 6 frames"
  expect 0 "$MD" predict --model "$model" --scale none "$T/vid/clip.mp4" -o "$T/vid/out"
  contains "6 frames"
  [ -s "$T/vid/out/clip.depth.mp4" ] && [ -s "$T/vid/out/clip.json" ] && ok || bad "no depth video"
  expect 0 "$MD" convert "$T/vid/out/clip.depth.mp4" -o "$T/vid/frames/"
  contains "wrote 6 frames"
  expect 0 "$MD" predict --model "$model" --scale none "$T/vid/clip.mp4" -o "$T/vid/num" --outputs png16,json
  n=$(ls "$T/vid/num/clip" | grep -c 'depth.png$'); [ "$n" -eq 6 ] && ok || bad "$n numbered frames, wanted 6"
  # a video as a sequence (issue 12): one anchor file for every frame, each frame's raw and
  # filtered scale in the video's sidecar
  printf '320 240 2.0\n300 200 2.1\n340 260 1.9\n' >"$T/vid/anchors.txt"
  expect 0 "$MD" predict --model "$model" --sequence --anchors "$T/vid/anchors.txt" "$T/vid/clip.mp4" \
    -o "$T/vid/seq"
  n=$(grep -o '"raw_scale"' "$T/vid/seq/clip.json" | wc -l); [ "$n" -eq 6 ] && ok || bad "$n frames with a raw scale, wanted 6"
  n=$(grep -o '"filtered_scale"' "$T/vid/seq/clip.json" | wc -l); [ "$n" -eq 6 ] && ok || bad "$n frames with a filtered scale, wanted 6"
fi

# --- Depth Anything V2 as users download it: transformers' layout, relative checkpoints
da2="$SHARED/reference/da2"
if [ -n "$SHARED" ] && [ -f "$da2/tiny_hf/model.safetensors" ] && [ -f "$da2/tiny_relative/depth_anything_v2_vits.pth" ]; then
  expect 0 "$MD" run-model --model "$da2/tiny_hf/model.safetensors" --input "$da2/tiny/preprocessed.npy" \
    --output "$T/hf.npy" --compare "$da2/tiny/depth_net.npy" --tol 1e-3
  contains "transformers layout"
  expect 0 "$MD" run-model --model "$da2/tiny_relative/depth_anything_v2_vits.pth" \
    --input "$da2/tiny_relative/preprocessed.npy" --output "$T/rel.npy" \
    --compare "$da2/tiny_relative/disparity_net.npy" --tol 1e-3
  contains "relative"
  # the metric head on the relative file differs from the reference: the check can fail
  expect 1 "$MD" run-model --model "$da2/tiny_relative/depth_anything_v2_vits.pth" --metric \
    --input "$da2/tiny_relative/preprocessed.npy" --output "$T/rel.npy" \
    --compare "$da2/tiny_relative/disparity_net.npy" --tol 1e-3
  contains "relative checkpoint by its file name"
  expect 0 "$MD" predict --model "$da2/tiny_relative/depth_anything_v2_vits.pth" --input-size 140 \
    "$da2/tiny_relative/input.png" -o "$T/rel" --outputs png16,npy,pfm,preview,json
  contains "relative disparity"
  [ -s "$T/rel/input.disparity.npy" ] && [ -s "$T/rel/input.disparity.png" ] && ok || bad "no disparity files"
  ls "$T/rel" | grep -q depth && bad "a relative model wrote depth files: $(ls "$T/rel")" || ok
  grep -q '"depth_unit":[[:space:]]*null' "$T/rel/input.json" && ok || bad "sidecar claims a unit"
  grep -q '"m"' "$T/rel/input.json" && bad "sidecar of relative output says metres" || ok
  expect 2 "$MD" predict --model "$da2/tiny_relative/depth_anything_v2_vits.pth" "$da2/tiny_relative/input.png" \
    -o "$T/rel2" --ply
  contains "needs metric depth"
fi

# --- shards for fit-scales and eval: the merged CSV is the unsharded one
if [ -n "$SHARED" ] && [ -f "$SHARED/models/fastdepth/fastdepth_7.onnx" ] && [ -d "$SHARED/data/nyu_demo_metric3d" ]; then
  model="$SHARED/models/fastdepth/fastdepth_7.onnx"
  for k in 1 2 3; do
    expect 0 "$MD" fit-scales --data "$SHARED/data/nyu_demo_metric3d" --model "$model" --shard $k/3 \
      --cache "$T/sh3/cache" -o "$T/sh3/part$k.csv"
    contains "shard $k/3"
  done
  expect 0 "$MD" merge -o "$T/sh3/all.csv" "$T/sh3/part1.csv" "$T/sh3/part2.csv" "$T/sh3/part3.csv"
  contains "wrote 3 rows from 3 files"
  expect 0 "$MD" fit-scales --data "$SHARED/data/nyu_demo_metric3d" --model "$model" --cache "$T/sh3/cache" \
    -o "$T/sh3/whole.csv"
  contains "3 of 3 predictions from the cache"
  cmp -s "$T/sh3/all.csv" "$T/sh3/whole.csv" && ok || bad "merged shards differ from the unsharded CSV"
  printf 'other,header\n1,2\n' >"$T/sh3/odd.csv"
  expect 1 "$MD" merge -o "$T/sh3/x.csv" "$T/sh3/part1.csv" "$T/sh3/odd.csv"
  contains "odd.csv: its header differs"
  [ ! -e "$T/sh3/x.csv" ] && ok || bad "merge wrote a file after an error"
  expect 2 "$MD" fit-scales --data "$SHARED/data/nyu_demo_metric3d" --shard 1/2 --trim 5,95 -o "$T/sh3/t.csv"
  for k in 1 2; do
    expect 0 "$MD" eval --data "$SHARED/data/nyu_demo_metric3d" --split fraction:0.34:1 --model "$model" \
      --shard $k/2 --cache "$T/sh3/ecache" -o "$T/sh3/ev"
  done
  expect 0 "$MD" eval --data "$SHARED/data/nyu_demo_metric3d" --split fraction:0.34:1 --model "$model" \
    --cache "$T/sh3/ecache" --panels 0 -o "$T/sh3/ev"
  grep -q "3 base predictions from the cache" "$T/sh3/ev/report.md" && ok || bad "eval shards did not fill the cache"
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
# limits count from what the binary's shared libraries alone map (FFmpeg, cairo:
# about 200 MB here), found by bisection on --help: FastDepth must run within 150 MB
# more, and fail with "out of memory" (exit 1) within 20 MB more. The sanitizer
# builds reserve terabytes of address space, so only a plain build runs this.
fd="$SHARED/models/fastdepth/fastdepth_7.onnx"
img="$SHARED/data/nyu_demo_metric3d/rgb/rgb_00000.jpg"
if [ -f "$fd" ] && [ -f "$img" ] && ! ldd "$MD" 2>/dev/null | grep -q -E 'libasan|libtsan'; then
  lo=0; hi=4000000
  while [ $((hi - lo)) -gt 5000 ]; do
    mid=$(((lo + hi) / 2))
    # (a limit below what the loader needs kills --help itself: the outer
    # subshell keeps bash's crash notice out of the log)
    if ( (ulimit -v "$mid"; "$MD" --help) >/dev/null 2>&1 ) 2>/dev/null; then hi=$mid; else lo=$mid; fi
  done
  for extra in 150000 20000; do
    lim=$((hi + extra))
    ( ulimit -v "$lim"; timeout 120 "$MD" predict --model "$fd" --scale none "$img" \
        -o "$T/lim$extra" ) >"$T/out" 2>&1
    rc=$?
    if [ "$extra" -eq 150000 ]; then
      if [ "$rc" -eq 0 ] && [ -f "$T/lim$extra/rgb_00000.depth.png" ]; then ok
      else bad "predict under ulimit -v $lim (libraries + $extra): exit $rc (124 = hung)"
        sed 's/^/    /' "$T/out" >&2; fi
    elif [ "$rc" -eq 1 ] && grep -q "out of memory" "$T/out"; then ok
    else bad "predict under ulimit -v $lim (libraries + $extra): exit $rc (wanted 1, out of memory)"
      sed 's/^/    /' "$T/out" >&2; fi
  done
  # --precision bf16 runs an ONNX model's convolutions in bf16 and writes its
  # depth map (test_onnx bounds its difference from float32)
  expect 0 "$MD" predict --model "$fd" --precision bf16 "$img" -o "$T/bf"
  expect 0 "$MD" predict --model "$fd" --precision fp32 "$img" -o "$T/f32"
  if [ -f "$T/bf/rgb_00000.depth.png" ] && [ -f "$T/f32/rgb_00000.depth.png" ]; then ok
  else bad "predict --precision bf16/fp32 wrote no depth map"; fi
  expect 2 "$MD" predict --model "$fd" --precision fp64 "$img" -o "$T/bf"
  contains "fp32, bf16 or auto"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
