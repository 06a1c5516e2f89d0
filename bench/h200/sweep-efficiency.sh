#!/usr/bin/env bash
# On the H200 (issue 26): bench/sweep_efficiency.py for one task (the README command, then the packed
# ceiling of its own trials), with the sweep's tables and every trial's record (no checkpoints) into $OUT.
#   bash bench/h200/sweep-efficiency.sh <task> [more bench/sweep_efficiency.py flags]
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
task=$1; shift
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card-$task.txt"
S=/tmp/eff-$task; rm -rf $S $S.log
python3 bench/sweep_efficiency.py --task "$task" --storage $S --out "$OUT/efficiency-$task.md" "$@" \
  > "$OUT/bench-$task.log" 2>&1; echo "bench rc $?"
tail -n 25 "$OUT/bench-$task.log"
timeout 60 python3 -m analysis.report $S > /dev/null 2>&1
cp $S.log "$OUT/sweep-$task.log"; cp $S/table.md "$OUT/table-$task.md"; cp $S/trials.jsonl.gz "$OUT/trials-$task.jsonl.gz"
