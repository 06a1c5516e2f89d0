#!/usr/bin/env bash
# On the card (issue 28), one call of about 6 minutes: linear attention's backward defaults since
# 2026-12-07 (dq on 2 warps, dk/dv on 2 stages; each won alone in float32 on an H200). Its GPU
# tests under them (outputs and every gradient against the reference), then every backward launch
# setting beside the defaults, the old ones among them, in float32 and bfloat16.
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled && bash bench/h200/la-backward.sh
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 200 python3 -m pytest -q -m gpu -rA --durations=5 -p no:cacheprovider tests/ops/test_linear_attention.py \
  > "$OUT/pytest_gpu_linear_attention.txt" 2>&1
echo "pytest rc $?"; tail -n 12 "$OUT/pytest_gpu_linear_attention.txt"
timeout 360 python3 bench/kernel_configs.py --kernels linear_attention --passes backward \
  --out "$OUT/la-backward-configs.md" > "$OUT/la-backward-configs.log" 2>&1
echo "kernel_configs rc $?"; grep -E "\| (DQ|BACKWARD)_CONFIG" "$OUT/la-backward-configs.md"
