#!/usr/bin/env bash
# On the card (issue 28), one call of about 8 minutes: the selective scan after its loads were freed
# from the stores before them (the sequential forward stores a tile's y after the tile; the sequential
# backward loads each step's inputs a step ahead). The selective-scan GPU tests, then the kernel's
# launch settings with the previous version of the module timed beside the current one
# (bench/kernel_configs.py --against: bench/_earlier_selective_scan.py, a copy of the earlier file that
# travels untracked), then the kernel table.
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD RAY_AUTH_MODE=disabled && bash bench/h200/selective-scan-loads.sh
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/ops/test_selective_scan.py > "$OUT/pytest_ss.txt" 2>&1
echo "pytest rc $?"; tail -n 8 "$OUT/pytest_ss.txt"
against=bench/_earlier_selective_scan.py
[ -f $against ] || against=
timeout 240 python3 bench/kernel_configs.py --kernels selective_scan ${against:+--against $against} \
  --out "$OUT/ss-configs.md" > "$OUT/ss-configs.log" 2>&1
echo "configs rc $?"; cat "$OUT/ss-configs.log"
timeout 150 python3 bench/kernels.py --large-only --no-reference --no-steps --out "$OUT/kernels.md" > "$OUT/kernels.log" 2>&1
echo "kernels rc $?"; tail -n 30 "$OUT/kernels.log"
