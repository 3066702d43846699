#!/usr/bin/env bash
# The GPU session's one long command: install this checkout with the machine's own
# torch/triton, run the test suite on the GPU, then the GPU benchmarks (kernels, then
# `effseg bench` fp32 + fp16, then the pytest-benchmark cases).
# Usage: bash bench/run_gpu_suite.sh [results-dir]
set -uo pipefail
out="${1:-bench/results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu-machine.txt"
python3 -m pip install -q --no-build-isolation --no-deps . 2>&1 | tail -5
python3 -c "import effseg, json; print(json.dumps(effseg.backend_report(), indent=1))"
python3 -m pytest -q -x -m "not slow" --import-mode=importlib -p no:cacheprovider tests 2>&1 | tee "$out/gpu-tests.log" | tail -30
for b in bench/bench_*.py; do
  python3 "$b" --device cuda 2>&1 | tail -20
done
cp bench/results/*-gpu.json "$out/" 2>/dev/null || true
# The model benchmark (`effseg bench` on CUDA, fp32 and fp16, every usable backend) ->
# $out/gpu-<machine>-<date>.json and its plot; then the pytest-benchmark kernel cases.
python3 bench/run_cpu_suite.py --device cuda --no-kernels --dtype fp32 fp16 --results "$out" 2>&1 | tail -20
python3 -m pytest bench/ --benchmark-only -q -p no:cacheprovider --import-mode=importlib \
  --benchmark-json "$out/kernels-pytest-gpu.json" 2>&1 | tail -60
