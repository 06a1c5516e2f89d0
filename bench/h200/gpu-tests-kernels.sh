#!/usr/bin/env bash
# On the H200 (issue 28, items 3 and 4), in parts that each fit one 10-minute call:
#   tests     every GPU test (pytest -m gpu), up to 6.5 min (its 20 slowest listed; a first H100 run
#             was cut at 260 s)
#   kernels   bench/kernels.py at B 64, L 2048, D 256: all eight recurrent kernels (% of copy
#             bandwidth), fwd and fwd+bwd, without the torch references (slow at that length)
#   tests1, tests2, tests3  the same suite in three parts, one call each (the whole no longer fits
#             one, nor do two halves: wkv's 16 tests alone took about 290 s on 2026-12-07)
#   bash bench/h200/gpu-tests-kernels.sh tests1      (then tests2, tests3 and kernels, a call each)
#   parallel  the same suite in one call: each file its own pytest process, all at once
# Item 5's step table (every registered model at the RegBench shape, fp32, tf32 and bf16) is
# bench/h200/regbench-plan.sh, which also turns it into issue 29's GPU-minutes: another call.
# Run with carry [".whl"] after ../shared/gpu/make-wheels.sh and bench/h200/slim-wheels.sh (the tests import ray and optuna):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && bash bench/h200/gpu-tests-kernels.sh tests,kernels
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
parts=",${1:-tests,kernels},"
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
if [[ $parts == *,tests,* ]]; then
  timeout 390 python3 -m pytest -q -m gpu --durations=20 -p no:cacheprovider tests/ > "$OUT/pytest_gpu.txt" 2>&1; echo "pytest rc $?"; tail -n 30 "$OUT/pytest_gpu.txt"
fi
# The whole suite outgrew one call on 2026-12-07 (92 of 136 tests in 390 + 250 s: each wkv and
# selective-scan launch setting compiles for 10-35 s), and then two (wkv's 16 tests and 2 bucket
# tests took 320 s): three parts, one call each. Part 1's tests and one of wkv's took 390 s; part 2's
# first 18 of 19, 320 s; part 3 has not run.
run_part() {  # <name> <files...>
  local name=$1; shift
  timeout 540 python3 -m pytest -q -m gpu -rA --durations=20 -p no:cacheprovider "$@" > "$OUT/pytest_gpu_$name.txt" 2>&1
  echo "pytest rc $?"; tail -n 30 "$OUT/pytest_gpu_$name.txt"
}
# parallel: every GPU test in one call, each file (wkv's in three parts) its own pytest process at
# once. The time is compilation, which is CPU work, and the card has 16 cores; the tests check
# values, not times, so sharing the GPU changes nothing they assert.
if [[ $parts == *,parallel,* ]]; then
  shard() {  # <name> <pytest args...>
    local name=$1; shift
    timeout ${SHARD_TIMEOUT:-520} python3 -m pytest -q -m gpu -rA --durations=5 -p no:cacheprovider "$@" > "$OUT/pytest_gpu_p_$name.txt" 2>&1
    echo "$name rc $?: $(tail -n 1 "$OUT/pytest_gpu_p_$name.txt")"
  }
  start=$(date +%s)
  shard la tests/ops/test_linear_attention.py & shard complex tests/ops/test_complex_scan.py &
  shard scan tests/ops/test_scan.py & shard ss tests/ops/test_selective_scan.py &
  shard wkv_ref tests/ops/test_wkv.py -k "not other and not segmented" & shard wkv_other tests/ops/test_wkv.py -k other &
  shard wkv_seg tests/ops/test_wkv.py -k segmented &
  shard buckets tests/test_buckets.py & shard step tests/test_step.py tests/test_train.py &
  shard occupancy tests/test_bench_occupancy.py &
  wait; echo "all shards: $(( $(date +%s) - start )) s"
  python3 -m pytest --co -q -m gpu -p no:cacheprovider tests/ 2>&1 | tail -n 1 | tee "$OUT/pytest_gpu_collected.txt"
  # the device tool brings back at most 8 files: the shards' outputs travel as one archive
  # (bench/pytest_gpu_summary.py reads them once unpacked)
  tar -czf "$OUT/pytest_gpu_parallel.tar.gz" -C "$OUT" $(cd "$OUT" && ls pytest_gpu_p_*.txt pytest_gpu_collected.txt card.txt) \
    && rm -f "$OUT"/pytest_gpu_p_*.txt
fi
[[ $parts == *,tests1,* ]] && run_part 1 tests/ops/test_linear_attention.py tests/ops/test_complex_scan.py \
  tests/ops/test_scan.py tests/ops/test_selective_scan.py
[[ $parts == *,tests2,* ]] && run_part 2 tests/ops/test_wkv.py tests/test_buckets.py
[[ $parts == *,tests3,* ]] && run_part 3 tests/test_step.py tests/test_train.py tests/test_bench_occupancy.py
if [[ $parts == *,kernels,* ]]; then
  timeout 170 python3 bench/kernels.py --large-only --no-reference --no-steps --out "$OUT/kernels.md" > "$OUT/kernels.log" 2>&1; echo "kernels rc $?"; tail -n 40 "$OUT/kernels.log"
fi
