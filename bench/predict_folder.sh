#!/usr/bin/env bash
# predict's throughput over a folder: one or two metricdepth builds, run in
# turn (A, B, A, B, ...) so that both see the same machine state, each over
# the whole folder into a fresh output directory. Prints every run's wall
# and CPU time (user + system, whole process), then for each build the
# median wall time, images per second and median CPU time, and the median
# of the per-round ratios B/A.
#
# usage: bench/predict_folder.sh [-n ROUNDS] [-o OUTPUTS] FOLDER BUILD_A [BUILD_B]
# OUTPUTS is predict's --outputs list (default: predict's default outputs).
# The README's figures: the 250 colour frames of ../shared's 7-Scenes sample,
#   mkdir -p /tmp/rgb && cp ../shared/data/7scenes_redkitchen/*.color.jpg /tmp/rgb
#   bench/predict_folder.sh -n 8 /tmp/rgb OLD/build/metricdepth build/metricdepth
set -euo pipefail
rounds=5
outputs=""
while getopts "n:o:" opt; do
  case "$opt" in
    n) rounds="$OPTARG" ;;
    o) outputs="$OPTARG" ;;
    *) echo "usage: $0 [-n ROUNDS] [-o OUTPUTS] FOLDER BUILD_A [BUILD_B]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { echo "usage: $0 [-n ROUNDS] [-o OUTPUTS] FOLDER BUILD_A [BUILD_B]" >&2; exit 2; }
folder="$1"; shift
builds=("$@")
[ -d "$folder" ] || { echo "$0: $folder is not a folder" >&2; exit 2; }
for b in "${builds[@]}"; do
  [ -f "$b" ] && [ -x "$b" ] || { echo "$0: $b is not an executable file (a metricdepth binary)" >&2; exit 2; }
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
args=()
[ -n "$outputs" ] && args=(--outputs "$outputs")

field() { grep -m1 "^$1" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
echo "cpu: $(field 'model name') (family $(field 'cpu family'), model $(field 'model\s')), $(nproc) online CPUs"
for r in $(seq 1 "$rounds"); do
  for i in "${!builds[@]}"; do
    rm -rf "$tmp/out"
    # wall from predict's own line, CPU from the shell's times of the child
    start=$(date +%s.%N)
    "${builds[$i]}" predict "$folder" -o "$tmp/out" "${args[@]}" >/dev/null 2>"$tmp/err" || {
      echo "$0: ${builds[$i]} failed:" >&2; tail -5 "$tmp/err" >&2; exit 1; }
    end=$(date +%s.%N)
    read -r _ _ cu cs < <(awk '{print $14, $15, $16, $17}' /proc/$$/stat)
    images=$(grep -o 'predict: [0-9]*/' "$tmp/err" | tail -1 | tr -dc '0-9')
    echo "$r $i $(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}') $cu $cs $images"
  done
done > "$tmp/runs"

tck=$(getconf CLK_TCK)
# CPU per run: the children's cumulative ticks, differenced run to run
awk -v tck="$tck" -v nb="${#builds[@]}" '
  { wall[NR] = $3; cpu_cum[NR] = ($4 + $5) / tck; build[NR] = $2; img[NR] = $6 }
  END {
    prev = 0
    for (k = 1; k <= NR; k++) { cpu[k] = cpu_cum[k] - prev; prev = cpu_cum[k] }
    for (k = 1; k <= NR; k++)
      printf "run %d build %s: %.3f s wall, %.3f s CPU, %d images\n", int((k - 1) / nb) + 1,
             build[k] == 0 ? "A" : "B", wall[k], cpu[k], img[k]
    for (k = 1; k <= NR; k++) print build[k], wall[k], cpu[k], img[k] > "/dev/stderr"
  }' "$tmp/runs" 2>"$tmp/table"

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for i in "${!builds[@]}"; do
  w=$(awk -v b="$i" '$1 == b {print $2}' "$tmp/table" | median)
  c=$(awk -v b="$i" '$1 == b {print $3}' "$tmp/table" | median)
  n=$(awk -v b="$i" '$1 == b {print $4}' "$tmp/table" | head -1)
  printf "%s %s: median %.2f s wall (%.1f images/s), %.2f s CPU\n" "$([ "$i" = 0 ] && echo A || echo B)" \
         "${builds[$i]}" "$w" "$(awk -v n="$n" -v w="$w" 'BEGIN {print n / w}')" "$c"
done
if [ "${#builds[@]}" -ge 2 ]; then
  paste <(awk '$1 == 0 {print $2}' "$tmp/table") <(awk '$1 == 1 {print $2}' "$tmp/table") |
    awk '{print $2 / $1}' | median | xargs printf "B/A wall time, median of the rounds' ratios: %.3f\n"
fi
