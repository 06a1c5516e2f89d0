#!/usr/bin/env bash
# On the card (issue 29, item 2, the rest of the plan step; not run yet): what packing buys at
# RegBench's shape, and the step times of the models whose kernels changed on 2026-12-06.
#   PYTHONPATH=$PWD bash bench/h200/regbench-packing.sh      (torch only: no wheels needed; about 8-9 min)
# 1. bench/regbench_steps.py, bf16, at RegBench's padded length of 720 (the first table was at 1,000),
#    for the Transformer and the models on the linear-attention and selective-scan kernels (their
#    launch settings were timed after the first step table was made); then epochs of 1,000 real
#    examples, padded against 4 length buckets (train.length_buckets): whether to turn buckets on in
#    the regbench preset (run `pytest -m gpu tests/test_buckets.py` first: the captured path's check);
# 2. bench/packing.py --regbench --bf16 --mps: N graph-captured trials of one model at the paper's size,
#    length 720, side by side, with and without MPS, for the Transformer (the model the paper's
#    finding is about) and Mamba (the largest share of the budget);
# 3. bench/short_conv.py: Mamba's, Hyena's and H3's short convolutions as cuDNN's depthwise conv1d
#    against shifted copies added (seqicl.ops.short_conv), alone and in each model's bf16 step
#    (about 1.5 min): METHOD there follows it (Mamba is the largest share of the budget);
# then the budget with the packing each row measured: bench/regbench_budget.py --packing R.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 200 python3 bench/regbench_steps.py --precisions bf16 --buckets 4 --models transformer,mamba,linear_transformer,retnet,gla \
  --out "$OUT/regbench-steps-bf16-new-kernels.md" > "$OUT/regbench-steps.log" 2>&1; echo "steps rc $?"; cat "$OUT/regbench-steps.log"
for m in transformer mamba; do
  timeout 200 python3 bench/packing.py --regbench --bf16 --graph --mps --model $m --procs 1,4 --seconds 10 \
    --out "$OUT/packing-regbench-$m.md" > "$OUT/packing-$m.log" 2>&1; echo "packing $m rc $?"; tail -n 8 "$OUT/packing-regbench-$m.md"
done
timeout 150 python3 bench/short_conv.py --out "$OUT/short-conv.md" > "$OUT/short-conv.log" 2>&1; echo "short conv rc $?"; cat "$OUT/short-conv.log"
