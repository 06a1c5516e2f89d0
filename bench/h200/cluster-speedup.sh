#!/usr/bin/env bash
# Issue 30, item 3, on a host with two or more GPUs (written 2026-12-06, NOT YET RUN): the README's
# cluster command for one task (`ray start` with token authentication and MPS, then
# `sweeps/run.py --address auto --trials-per-gpu 16`) on one GPU of the host, then on all of its
# GPUs, in the same run; the speed-up in training steps/s (bench/sweep_timeline.py, over each
# run's whole wall time, Ray's start included) and in wall time. Goal: 1.9x or more on two GPUs.
#   bash bench/h200/cluster-speedup.sh induction 200                    # steps/s, 200-s budget each
#   bash bench/h200/cluster-speedup.sh induction 0 --num-samples 16     # wall time of whole sweeps
# Anything after the budget goes to both sweeps. Writes $OUT/cluster-speedup-<task>.md and logs.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
task=${1:-induction}; budget=${2:-200}; shift 2 || shift $#
gpus=$(nvidia-smi -L | wc -l)
[ "$gpus" -ge 2 ] || { echo "needs two or more GPUs, found $gpus"; exit 2; }
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$(python3 -c "import secrets; print(secrets.token_hex(32))")
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc; date -u) | tee "$OUT/card-cluster.txt"
limit=(); [ "$budget" -gt 0 ] && limit=(--time-budget "$budget")
cmd=(sweeps/run.py --task "$task" --preset paper --address auto --trials-per-gpu 16 "${limit[@]}" "$@")
# the task data once, before either run, so neither run's wall time includes generating it
python3 - "${cmd[@]:1}" <<'EOF'
import sys
from seqicl.data import load_task
from sweeps.run import make_plan, parse_args
plan, _ = make_plan(parse_args([*sys.argv[1:], "--storage", "/tmp/cluster-speedup-unused"]))
for e in plan.experiments.values():
    load_task(e.cfg["task"], e.cfg["data"]["cache_dir"])
EOF

one_run() {  # $1: label, $2: the GPUs the node gets (CUDA_VISIBLE_DEVICES), $3: their count
  local S=/tmp/cluster-speedup-$1; rm -rf "$S"
  nvidia-cuda-mps-control -d                      # MPS per node, before `ray start`
  CUDA_VISIBLE_DEVICES=$2 ray start --head --port 6379 --num-gpus "$3" --num-cpus $((16 * $3)) \
    --include-dashboard=false --disable-usage-stats > "$OUT/ray-$1.log" 2>&1
  local t0; t0=$(date +%s.%N)
  timeout -s INT 580 python3 "${cmd[@]}" --storage "$S" > "$OUT/sweep-$1.log" 2>&1; echo "$1: sweep rc $?"
  local t1; t1=$(date +%s.%N)
  ray stop > /dev/null 2>&1
  echo quit | nvidia-cuda-mps-control
  python3 bench/sweep_timeline.py "$S" --since "$t0" --until "$t1" > "$OUT/timeline-$1.txt"
  local rate; rate=$(grep -o '[0-9]* steps/s over the window' "$OUT/timeline-$1.txt" | cut -d' ' -f1)
  echo "$1 $(python3 -c "print(f'{$t1 - $t0:.1f}')") ${rate:-0}" >> "$OUT/cluster-speedup-$task.tsv"
  cp "$S/table.md" "$OUT/table-$1.md" 2>/dev/null
}

rm -f "$OUT/cluster-speedup-$task.tsv"
one_run gpu1 0 1
one_run "gpu$gpus" "$(seq -s, 0 $((gpus - 1)))" "$gpus"
python3 - "$OUT/cluster-speedup-$task.tsv" "$task" "$budget" "${cmd[*]}" > "$OUT/cluster-speedup-$task.md" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
(l1, w1, r1), (ln, wn, rn) = rows
print(f"# Cluster speed-up, {sys.argv[2]} (budget {sys.argv[3]} s; 0: whole sweeps)\n\n`python {sys.argv[4]}`\n")
print("| run | wall (s) | steps/s |\n|---|---:|---:|")
for label, wall, rate in rows:
    print(f"| {label} | {wall} | {rate} |")
print(f"\nspeed-up {ln} over {l1}: {float(rn) / max(float(r1), 1e-9):.2f}x in steps/s, "
      f"{float(w1) / max(float(wn), 1e-9):.2f}x in wall time")
EOF
cat "$OUT/cluster-speedup-$task.md"
