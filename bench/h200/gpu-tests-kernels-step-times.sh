#!/usr/bin/env bash
# On the H200 (issue 5), after the LRU mixer moved to the packed complex scan (one GEMM each for B
# and C): every GPU test, the kernel benchmark, and the per-model step times, eager against graph.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
timeout 200 python3 -m pytest -q -m gpu tests/ > "$OUT/pytest_gpu.txt" 2>&1; tail -n 3 "$OUT/pytest_gpu.txt"
timeout 120 python3 bench/kernels.py --out "$OUT/kernels.md" > "$OUT/kernels.log" 2>&1; tail -n 25 "$OUT/kernels.log"
timeout 120 python3 bench/sweep_throughput.py --steps-only --out "$OUT/steps.md" > "$OUT/steps.log" 2>&1; cat "$OUT/steps.md"
