#!/usr/bin/env bash
# Embedding an installed metricdepth, as an application would: install into a
# prefix, move the prefix (the install must be relocatable), build
# examples/embed.c with pkg-config and with find_package(metricdepth), and
# check that both give the same metric depth as `metricdepth predict`, find
# their model inside the moved prefix, and that the core library links no
# cairo. Usage: install_test.sh BUILD_DIR SOURCE_DIR SHARED_DIR METRICDEPTH
set -u
build="$1" src="$2" shared="$3" md="$4"
img="$shared/data/nyu_demo_metric3d/rgb/rgb_00050.jpg"
[ -f "$img" ] || { echo "no $img: skipped"; exit 77; }
[ -f "$src/models/fastdepth_7.onnx" ] || { echo "no installed default model: skipped"; exit 77; }
command -v pkg-config >/dev/null && command -v cc >/dev/null || { echo "no pkg-config/cc: skipped"; exit 77; }
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

cmake --install "$build" --prefix "$T/first" >"$T/install.log" 2>&1 || { cat "$T/install.log"; exit 1; }
mv "$T/first" "$T/moved"
pc="$(find "$T/moved" -name metricdepth.pc | head -1)"
libdir="$(cd "$(dirname "$pc")/.." && pwd)"
[ -n "$pc" ] && ok || bad "no metricdepth.pc installed"
export PKG_CONFIG_PATH="$(dirname "$pc")"
case "$(pkg-config --variable=libdir metricdepth)" in
  "$T/moved"*) ok ;;
  *) bad "pkg-config's libdir $(pkg-config --variable=libdir metricdepth) is not in the moved prefix" ;;
esac
cc "$src/examples/embed.c" $(pkg-config --cflags --libs metricdepth) -Wl,-rpath,"$libdir" \
   -o "$T/embed_pc" 2>"$T/cc.log" && ok || { bad "pkg-config build"; cat "$T/cc.log"; }
cmake -S "$src/examples" -B "$T/cm" -DCMAKE_PREFIX_PATH="$T/moved" >"$T/cm.log" 2>&1 &&
  cmake --build "$T/cm" >>"$T/cm.log" 2>&1 && ok || { bad "find_package build"; cat "$T/cm.log"; }

"$md" predict "$img" -o "$T/cli" >/dev/null 2>&1 || bad "metricdepth predict"
for e in "$T/embed_pc" "$T/cm/embed"; do
  [ -x "$e" ] || continue
  "$e" "$img" "$T/out.npy" >"$T/embed.txt" 2>&1 || { bad "$e failed"; cat "$T/embed.txt"; continue; }
  grep -q "model $T/moved/share/metricdepth/models/fastdepth_7.onnx" "$T/embed.txt" && ok ||
    bad "$e did not find its model in the moved prefix: $(cat "$T/embed.txt")"
  cmp -s "$T/out.npy" "$T/cli/rgb_00050.depth.npy" && ok || bad "$e: depth differs from predict"
done
so="$(find "$libdir" -name 'libmetricdepth.so*' | head -1)"
if ldd "$so" | grep -q cairo; then bad "libmetricdepth links cairo"; else ok; fi
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
