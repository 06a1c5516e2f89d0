#!/usr/bin/env bash
# On the card (issue 28), one call of about 9 minutes: the GPU tests of the two chunked kernels and
# wkv (they passed on 2026-12-06 at commit 0f31921: pytest-gpu-h100-2026-12-06b.md; run again so
# that the timings below come from a tree whose kernels were checked), then the next round of
# launch settings: wkv's, the sequential forward among the selective scan's, and linear attention's
# float32 split3 (the default) against Triton's tf32x3.
#   (here: bash ../shared/gpu/make-wheels.sh && bash bench/h200/slim-wheels.sh; carry .whl) then on the card:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled && bash bench/h200/kernel-configs.sh
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 240 python3 -m pytest -q -m gpu tests/ops/test_selective_scan.py tests/ops/test_linear_attention.py tests/ops/test_wkv.py \
  > "$OUT/pytest_gpu.txt" 2>&1; echo "pytest rc $?"; tail -n 5 "$OUT/pytest_gpu.txt"
timeout 300 python3 bench/kernel_configs.py --out "$OUT/kernel-configs.md" > "$OUT/kernel-configs.log" 2>&1
echo "configs rc $?"; cat "$OUT/kernel-configs.log"
