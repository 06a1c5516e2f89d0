#!/usr/bin/env bash
# On the card (issue 28), one call of up to 9 minutes: the next round of launch settings
# (bench/kernel_configs.py): the linear-attention forward's neighbours after 2026-12-06's CHUNK 32 /
# 3 stages, dq at 3 stages, dk/dv on 8 warps, wkv's backward, the sequential selective-scan forward,
# and float32 split3 (the default) against Triton's tf32x3. Each row prints as it is timed, so a
# call cut short still returns what it timed. (The kernels' GPU tests run in the full `pytest -m gpu`.)
#   (here: bash ../shared/gpu/make-wheels.sh && bash bench/h200/slim-wheels.sh; carry .whl) then on the card:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled && bash bench/h200/kernel-configs.sh
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 540 python3 bench/kernel_configs.py --out "$OUT/kernel-configs.md" > "$OUT/kernel-configs.log" 2>&1
echo "configs rc $?"; cat "$OUT/kernel-configs.log"
