#!/usr/bin/env bash
# On the card (issue 28), one call of about 7 minutes: the segmented forwards (SEGMENTS in the
# FORWARD_CONFIG of linear attention, wkv and the selective scan; landed 2026-12-07 without a card).
# Their GPU tests first (outputs and every gradient against the references), then every forward
# launch setting beside the defaults at B 64 (the kernel table's shape) and at B 8 (fewer programs
# than the card holds, where segments should matter most).
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled && bash bench/h200/segments.sh
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 150 python3 -m pytest -q -m gpu -rA -p no:cacheprovider -k segment tests/ops/test_linear_attention.py \
  tests/ops/test_wkv.py tests/ops/test_selective_scan.py > "$OUT/pytest_gpu_segments.txt" 2>&1
echo "pytest rc $?"; tail -n 15 "$OUT/pytest_gpu_segments.txt"
for batch in 64 8; do
  timeout 120 python3 bench/kernel_configs.py --passes forward --batch $batch --out "$OUT/forward-configs-b$batch.md" \
    > "$OUT/forward-configs-b$batch.log" 2>&1
  echo "kernel_configs B $batch rc $?"; grep -E "default|SEGMENTS" "$OUT/forward-configs-b$batch.log"
done
