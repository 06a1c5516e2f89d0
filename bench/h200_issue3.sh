#!/usr/bin/env bash
# What issue 3 ran on the H200 in one device call (wheels from ../shared/gpu/make-wheels.sh in .whl/).
# Writes everything under $OUT (the device tool's output folder) or ./h200-out.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
timeout 150 python3 -m pytest -q -m gpu tests/ 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -15
timeout 150 python3 bench/kernels.py --out "$OUT/kernels.md" > "$OUT/bench.log" 2>&1; tail -25 "$OUT/bench.log"
start=$(date +%s)
timeout -s KILL ${SWEEP_S:-240} python3 sweeps/run.py --task associative_recall --preset paper \
  --models transformer,s4d,h3,gilr,lru,lstm,rwkv --num-samples 16 --max-concurrent 16 --gpus-per-trial 0.0625 \
  --storage "$OUT/ar" train.epochs=10 > "$OUT/ar_sweep.log" 2>&1
echo "sweep exit $? wall $(( $(date +%s) - start )) s" | tee "$OUT/ar_wall.txt"
python3 -m analysis.report "$OUT/ar" | head -24
tar czf "$OUT/ar.tgz" --exclude='*.pt' --exclude='checkpoint_*' -C "$OUT" ar ar_sweep.log
