#!/usr/bin/env bash
# On the H200 (issue 5; what ran on 2026-11-29, in three device calls): the sweep-throughput
# benchmark, the graph-vs-eager step tests, the packing/MPS benchmark and the bf16 check.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled SEQICL_CACHE=/tmp/seqicl-cache
# call 1 (361 s)
timeout -s KILL 500 python3 bench/sweep_throughput.py --seconds 75 --epochs 60 --models transformer,lstm \
  --storage /tmp/tp --out "$OUT/throughput.md" > "$OUT/throughput.log" 2>&1
# call 2 (275 s)
timeout 60 python3 -m pytest -q -m gpu tests/test_step.py > "$OUT/pytest_step.txt" 2>&1
timeout -s KILL 200 python3 bench/packing.py --procs 1,16 --seconds 12 --mps --out "$OUT/packing.md" > "$OUT/packing.log" 2>&1
timeout -s KILL 150 python3 bench/precision.py --task associative_recall --epochs 15 --out "$OUT/precision.md" > "$OUT/precision.log" 2>&1
# call 3 (515 s, next session): time to 97% with the original side given 400 s, seqicl under MPS.
timeout -s KILL 565 python3 bench/sweep_throughput.py --mps --models transformer --seconds 60 \
  --original-seconds 400 --epochs 60 --storage /tmp/tp --out "$OUT/throughput-mps.md" > "$OUT/throughput-mps.log" 2>&1
