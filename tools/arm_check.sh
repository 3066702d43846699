#!/usr/bin/env bash
# Builds the C++ kernels with the native kernel check (tests/native/) and runs it:
#   native   with the host g++, once per instruction set the CPU has (EFFSEG_SIMD =
#            generic, sse2, and avx2 / avx512 where present; generic and neon on an
#            aarch64 host such as a Jetson);
#   aarch64  with aarch64-linux-gnu-g++ (Debian: g++-aarch64-linux-gnu), run under
#            qemu-aarch64 (Debian: qemu-user) as generic and neon, after checking that
#            the NEON build of the hot loops really holds vector FMAs.
# Correctness only: timings under emulation mean nothing. Exits non-zero on any
# mismatch or build failure.
#
# usage: tools/arm_check.sh [native] [aarch64]      (default: both)
# env:   ARM_CHECK_DIR   build folder (default: build/arm_check)
#        ARM_CHECK_JOBS  parallel compiles (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(native aarch64)
out=${ARM_CHECK_DIR:-build/arm_check}
jobs=${ARM_CHECK_JOBS:-$(nproc)}
sysroot=/usr/aarch64-linux-gnu
# The flags CMakeLists.txt gives the extension, minus pybind: what ships is what is checked.
flags=(-std=gnu++17 -O3 -Wno-psabi -fno-math-errno -fno-trapping-math -fopenmp -DEFFSEG_OPENMP=1
       -Icsrc -Itests/native)
mapfile -t sources < <(find csrc tests/native -name '*.cpp' ! -name '*_bind.cpp' ! -name module.cpp | sort)

need() {
  command -v "$1" >/dev/null || { echo "arm_check: $1 not found (Debian package: $2)" >&2; exit 2; }
}

build() {  # build COMPILER DIR: objects in parallel, then the program DIR/native_check
  local cxx=$1 dir=$2
  mkdir -p "$dir"
  printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} sh -c \
    'd=$0 cxx=$1 src=$2; shift 2; exec "$cxx" "$@" -c "$src" -o "$d/$(echo "$src" | tr / _).o"' \
    "$dir" "$cxx" {} "${flags[@]}" \
    || { echo "arm_check: $cxx build failed" >&2; exit 1; }
  "$cxx" -fopenmp "$dir"/*.o -o "$dir/native_check"
}

run_native() {
  need g++ g++
  echo "== native $(uname -m): building"
  build g++ "$out/native"
  local levels=(generic neon)
  if [ "$(uname -m)" = x86_64 ]; then
    levels=(generic sse2)
    grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && levels+=(avx2)
    grep -qw avx512f /proc/cpuinfo && levels+=(avx512)
  fi
  for lv in "${levels[@]}"; do
    echo "== native, EFFSEG_SIMD=$lv"
    EFFSEG_SIMD=$lv OMP_NUM_THREADS=2 "$out/native/native_check"
  done
}

run_aarch64() {
  need aarch64-linux-gnu-g++ g++-aarch64-linux-gnu
  need qemu-aarch64 qemu-user
  echo "== aarch64: cross-building"
  build aarch64-linux-gnu-g++ "$out/aarch64"
  # The kernels reach NEON through GCC vector extensions: make sure the compiler did turn
  # the hot loops into 4-lane vector FMAs rather than scalar code.
  local obj n
  for obj in depthwise_conv2d_depthwise_conv2d selective_scan_selective_scan_fwd \
             selective_scan_selective_scan_bwd linear_attention_linear_attention; do
    n=$(aarch64-linux-gnu-objdump -d "$out/aarch64/csrc_$obj.cpp.o" | grep -cE 'fmla[[:space:]]+v[0-9]+\.4s' || true)
    echo "   $obj: $n NEON fmla .4s"
    [ "$n" -gt 0 ] || { echo "arm_check: no NEON vector FMA in $obj" >&2; exit 1; }
  done
  for lv in generic neon; do
    echo "== aarch64 under qemu, EFFSEG_SIMD=$lv"
    EFFSEG_SIMD=$lv OMP_NUM_THREADS=2 qemu-aarch64 -L "$sysroot" "$out/aarch64/native_check"
  done
}

for p in "${parts[@]}"; do
  case $p in
    native) run_native ;;
    aarch64) run_aarch64 ;;
    *) echo "usage: $0 [native] [aarch64]" >&2; exit 2 ;;
  esac
done
echo "arm_check: passed (${parts[*]})"
