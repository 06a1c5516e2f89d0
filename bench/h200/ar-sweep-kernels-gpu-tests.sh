#!/usr/bin/env bash
# On the H200, one device call (issue 3): GPU tests, the kernel benchmark, and an associative-recall
# sweep of all seven models (two sweep drivers sharing one Ray cluster, so the seven models take
# half the wall time). Writes everything under $OUT (the device tool's output folder) or ./h200-out.
# The graph-captured step is used in the sweep only if its GPU tests (tests/test_step.py) pass.
set -u
# Since 2026-12-02 a results folder takes one sweep driver at a time: each driver here has its own.
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled SEQICL_CACHE=/tmp/seqicl-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/card.txt"
timeout 100 python3 -m pytest -q -m gpu tests/test_step.py > "$OUT/pytest_step.txt" 2>&1; step_rc=$?
tail -n 3 "$OUT/pytest_step.txt"
CG=false; [ $step_rc -eq 0 ] && CG=true
timeout 120 python3 -m pytest -q -m gpu tests/ --ignore=tests/test_step.py > "$OUT/pytest_gpu.txt" 2>&1
tail -n 5 "$OUT/pytest_gpu.txt"
timeout 90 python3 bench/kernels.py --out "$OUT/kernels.md" > "$OUT/bench.log" 2>&1; tail -n 40 "$OUT/bench.log"
ray start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$OUT/ray.log" 2>&1
start=$(date +%s)
common="--task associative_recall --preset paper --address auto --num-samples 12 --max-concurrent 8
  --trials-per-gpu 16 --time-budget ${BUDGET_S:-45} train.epochs=30 train.cuda_graph=$CG"
timeout -s KILL 220 python3 sweeps/run.py $common --models transformer,s4d,h3,gilr --storage $OUT/ar/a > "$OUT/ar_a.log" 2>&1 &
timeout -s KILL 220 python3 sweeps/run.py $common --models lru,lstm,rwkv --storage $OUT/ar/b > "$OUT/ar_b.log" 2>&1
wait
echo "sweep wall $(( $(date +%s) - start )) s, cuda_graph=$CG" | tee "$OUT/ar_wall.txt"
ray stop > /dev/null 2>&1
grep -h "ended after\|not graph-captured" "$OUT"/ar_?.log | tail -n 4
python3 -m analysis.report "$OUT/ar" | head -n 30
tar czf "$OUT/ar.tgz" --exclude='*.pt' --exclude='checkpoint_*' --exclude='events.out*' -C "$OUT" ar
rm -rf "$OUT/ar"
