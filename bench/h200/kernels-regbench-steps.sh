#!/usr/bin/env bash
# On the H200 (issue 28, items 3-5; issue 29's step-time plan): every GPU test, the kernel
# benchmark (all eight recurrent kernels, % of copy bandwidth) and the training steps of every
# registered model at the RegBench shape (paper sizes, length 1000, batch 32; fp32, tf32, bf16).
#   run with carry [".whl"] after ../shared/gpu/make-wheels.sh (the tests import ray and optuna):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && bash bench/h200/kernels-regbench-steps.sh
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 240 python3 -m pytest -q -m gpu tests/ > "$OUT/pytest_gpu.txt" 2>&1; echo "pytest rc $?"; tail -n 5 "$OUT/pytest_gpu.txt"
timeout 150 python3 bench/kernels.py --out "$OUT/kernels.md" > "$OUT/kernels.log" 2>&1; echo "kernels rc $?"; tail -n 30 "$OUT/kernels.log"
timeout 150 python3 bench/regbench_steps.py --out "$OUT/regbench-steps.md" > "$OUT/regbench-steps.log" 2>&1
echo "regbench steps rc $?"; cat "$OUT/regbench-steps.log"
