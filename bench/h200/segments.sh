#!/usr/bin/env bash
# On the card (issue 28), one call: the segmented forwards of linear attention and wkv at the batch
# sizes given (default 16,32), SEGMENTS "fill" (their default since 2026-12-07) beside 1, 2, 4 and 8
# segments and the other forward settings. B 8 and B 64 were timed on 2026-12-07
# (bench/results/segments-h100-2026-12-07.md: 8 segments won at B 8, every count lost at B 64); "fill"
# gives 4 segments at B 16 and 2 at B 32 on 132 SMs, which no run has timed. The segment GPU tests of
# all three kernels passed that day (bench/results/pytest-gpu-h100-2026-12-07.md); TESTS=1 runs them again.
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled && bash bench/h200/segments.sh 16,32
# KERNELS="wkv" (space-separated) times only those kernels; each run takes up to 200 s.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
if [ "${TESTS:-0}" = 1 ]; then
  timeout 240 python3 -m pytest -q -m gpu -rA -p no:cacheprovider -k segment tests/ops/test_linear_attention.py \
    tests/ops/test_wkv.py tests/ops/test_selective_scan.py > "$OUT/pytest_gpu_segments.txt" 2>&1
  echo "pytest rc $?"; tail -n 5 "$OUT/pytest_gpu_segments.txt"
fi
for batch in ${1//,/ }; do
  # one kernel a run: a run cut by its timeout keeps the other kernel's rows
  for kernel in ${KERNELS:-linear_attention wkv}; do
    timeout 200 python3 bench/kernel_configs.py --kernels $kernel --passes forward --batch "$batch" \
      --out "$OUT/forward-$kernel-b$batch.md" > "$OUT/forward-$kernel-b$batch.log" 2>&1
    echo "kernel_configs $kernel B $batch rc $?"; grep -E "default|SEGMENTS" "$OUT/forward-$kernel-b$batch.log"
  done
done
