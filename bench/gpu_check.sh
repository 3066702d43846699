#!/usr/bin/env bash
# The one command for a short loan of a GPU machine (ARCHITECTURE.md, Devices): three stages,
# each under its own time limit, each leaving its files in the output folder as soon as it
# ends, so that a loan cut off part-way still returns the stages before the cut.
#
#   tests    170 s  build, `effseg info`, the Triton-kernel and gpu-marked tests
#   kernels  230 s  every kernel vs its anchors, fp32/fp16/bf16 (bench/gpu_kernels.py)
#   models   170 s  `effseg bench` on CUDA, fp32 then fp16, three zoo models (bench/gpu_models.py)
#
# 570 s in all: under the 10 minutes one command may run, with room for the summary.
#
#   bash bench/gpu_check.sh --out "$OUT"          # on the GPU machine
#   bash bench/gpu_check.sh --dry-run --out DIR   # CPU, Triton interpreter, tiny sizes, no build
#   bash bench/gpu_check.sh --list-tests          # stage 1's test selection
# Options: --out DIR (default $OUT, else gpu-check-out), --no-build, --stages tests,kernels,models,
# --budgets 170,230,170. Exit status 0 when stage 1 ran tests; summary.json has every stage.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
py="${PYTHON:-python3}"
out="${OUT:-gpu-check-out}"; dry=0; build=1; list=0
stages="tests,kernels,models"; budgets="170,230,170"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --dry-run) dry=1; build=0; shift ;;
    --no-build) build=0; shift ;;
    --stages) stages="$2"; shift 2 ;;
    --budgets) budgets="$2"; shift 2 ;;
    --list-tests) list=1; shift ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Stage 1's tests: every test of a Triton kernel (by name; on CUDA they run on the GPU) and
# every gpu-marked test, nothing slow. The dry run keeps the expression, on one file.
select=(-m "gpu or not slow" -k "triton or gpu")
test_paths=(tests)
if [ "$dry" = 1 ]; then
  test_paths=(tests/ops/test_cross_selective_scan.py)
  # Before anything imports triton: its kernels then run on CPU tensors.
  export TRITON_INTERPRET=1
fi
# python -P: `-m` would put the checkout first on sys.path, and its effseg (no C++ module
# built in place) would shadow the one pip just installed.
if [ "$list" = 1 ]; then
  exec "$py" -P -m pytest --collect-only -q -p no:cacheprovider "${select[@]}" tests
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
export PYTHONUNBUFFERED=1
# The allocator setting the bench scripts use (ARCHITECTURE.md), set here so no child restarts.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-17179869184}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-17179869184}"
IFS=, read -r b_tests b_kernels b_models <<< "$budgets"
t_all=$SECONDS

stage_end=0
left() { echo $(( stage_end - SECONDS )); }
# timeout sends SIGINT first: pytest then writes its junit XML and the drivers their JSON.
limited() { local t=$1; shift; [ "$t" -lt 5 ] && t=5; timeout -s INT -k 15 "$t" "$@"; }
want() { case ",$stages," in *",$1,"*) return 0 ;; esac; return 1; }
record() {  # name rc start budget files...
  local name=$1 rc=$2 start=$3 budget=$4; shift 4
  "$py" bench/gpu_check_util.py stage "$out" "$name" "$rc" $(( SECONDS - start )) "$budget" "$@"
  echo "== $name: rc $rc in $(( SECONDS - start )) s (budget $budget s)"
}

if want tests; then
  s=$SECONDS; stage_end=$(( s + b_tests )); brc=0
  rm -f "$out"/tests.{xml,json,log}
  [ "$dry" = 1 ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
    > "$out/machine.txt" 2>&1
  if [ "$build" = 1 ]; then
    echo "== build: pip install --no-build-isolation --no-deps ."
    bt=$(( $(left) - 60 )); [ "$bt" -gt 110 ] && bt=110
    limited "$bt" "$py" -m pip install --no-build-isolation --no-deps . > "$out/build.log" 2>&1
    brc=$?
    if [ "$brc" != 0 ]; then
      # The Triton kernels need no build: run the checkout's source rather than nothing.
      echo "build failed (rc $brc, see build.log): running effseg from the source tree"
      export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
    fi
  fi
  limited 40 "$py" -P -m effseg.cli info --json > "$out/info.json" 2> "$out/info.err"
  echo "== tests: pytest ${select[*]} ${test_paths[*]}"
  limited "$(left)" "$py" -P -m pytest -v -p no:cacheprovider --junitxml="$out/tests.xml" \
    "${select[@]}" "${test_paths[@]}" > "$out/tests.log" 2>&1
  rc=$?
  tail -3 "$out/tests.log"
  BUILD_RC=$brc "$py" bench/gpu_check_util.py tests "$out"
  record tests "$rc" "$s" "$b_tests" tests.json tests.log info.json
fi

if want kernels; then
  s=$SECONDS; stage_end=$(( s + b_kernels ))
  rm -f "$out"/kernels.{json,log}
  echo "== kernels: bench/gpu_kernels.py"
  flags=(); [ "$dry" = 1 ] && flags=(--dry-run)
  while :; do
    limited "$(left)" "$py" bench/gpu_kernels.py --out "$out/kernels.json" --resume "${flags[@]}" \
      >> "$out/kernels.log" 2>&1
    rc=$?
    # rc 3: a CUDA error left the context unusable; the rest runs in a fresh process.
    [ "$rc" = 3 ] && [ "$(left)" -gt 15 ] || break
  done
  grep '^\[gpu_kernels\].*:' "$out/kernels.log" | tail -8
  record kernels "$rc" "$s" "$b_kernels" kernels.json kernels.log
fi

if want models; then
  s=$SECONDS; stage_end=$(( s + b_models ))
  rm -f "$out"/models.{json,log,png}
  echo "== models: bench/gpu_models.py"
  flags=(); [ "$dry" = 1 ] && flags=(--dry-run)
  limited "$(left)" "$py" bench/gpu_models.py --out-dir "$out" "${flags[@]}" > "$out/models.log" 2>&1
  rc=$?
  grep '^\[gpu_models\]' "$out/models.log" | tail -6
  record models "$rc" "$s" "$b_models" models.json models.log
fi

echo "total $(( SECONDS - t_all )) s"
"$py" bench/gpu_check_util.py summary "$out"
