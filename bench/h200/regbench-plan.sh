#!/usr/bin/env bash
# On the H200 (issue 29, item 2; not run yet): the plan step of the RegBench learning curve. Step
# times of every registered model at the RegBench shape (length 1000, batch 32, the paper's best
# size; fp32, tf32 and bf16) with bench/regbench_steps.py (issue 28's step table too),
# then the GPU-minutes the `regbench` preset would take per model and size at fp32 and at bf16
# (bench/regbench_budget.py, no GPU needed), against issue 29's 120 GPU-minutes. About 3 minutes.
#   PYTHONPATH=$PWD bash bench/h200/regbench-plan.sh     (torch and PyYAML only: no wheels needed)
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
timeout 400 python3 bench/regbench_steps.py --precisions fp32,tf32,bf16 --out "$OUT/regbench-steps.md" \
  > "$OUT/regbench-steps.log" 2>&1; echo "steps rc $?"; cat "$OUT/regbench-steps.log"
for p in fp32 bf16; do
  python3 bench/regbench_budget.py "$OUT/regbench-steps.md" --precision $p --out "$OUT/regbench-budget-$p.md"
done
