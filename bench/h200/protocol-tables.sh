#!/usr/bin/env bash
# On the H200 (issue 27): the three tables of one task, each sweep resumable across device calls.
#   bash bench/h200/protocol-tables.sh <task> <original|original-size|paper-original|paper> <seconds> [run.py flags]
# Each call runs (or continues) results/<task>-<preset> in /tmp for at most <seconds>, then writes
# its report and packs the records and states (no TensorBoard) into $OUT; the next call
# carries the archive back in (untar it at the same place first) and runs with --resume; on a
# machine still warm the folder is still in /tmp and the call resumes from it. A searched
# preset's chosen configurations then run with seeds 1 and 2 (sweeps/reseed.py) in the time left.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
task=$1 preset=$2 seconds=$3; shift 3
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date) | tee "$OUT/card.txt"
S=/tmp/protocol/$task-$preset
if [ -f "carry/$task-$preset.tar.gz" ]; then mkdir -p /tmp/protocol && tar -xzf "carry/$task-$preset.tar.gz" -C /tmp/protocol; fi
resume=(); [ -f "$S/sweep.json" ] && resume=(--resume)
start=$(date +%s)
python3 sweeps/run.py --task "$task" --preset "$preset" --storage "$S" --time-budget "$seconds" "${resume[@]}" "$@" \
  > "$OUT/sweep-$task-$preset.log" 2>&1; echo "sweep rc $? after $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
tail -n 12 "$OUT/sweep-$task-$preset.log"
# a searched table (not `original`, whose seeds are its trials) gets its chosen configurations
# again with seeds 1 and 2 once its sweep is complete, in the time left (reseed.py resumes too)
left=$(( seconds - ($(date +%s) - start) ))
if [ "$preset" != original ] && ! grep -q "the time budget ran out" "$OUT/sweep-$task-$preset.log"; then
  if [ $left -ge 60 ]; then
    python3 sweeps/reseed.py "$S" --seeds 1,2 --time-budget $left > "$OUT/reseed-$task-$preset.log" 2>&1
    echo "reseed rc $? in $left s or less" | tee -a "$OUT/wall.txt"; tail -n 5 "$OUT/reseed-$task-$preset.log"
  else
    echo "reseeds left for the next call ($left s left)" | tee -a "$OUT/wall.txt"
  fi
fi
timeout 60 python3 -m analysis.report "$S" > /dev/null 2>&1
# the summary (records, tables, settings) always fits the device tool's 16 MiB; the full folder
# (trial checkpoints, needed to --resume on a fresh machine) only while it is small
tar --exclude="$task-$preset/$task" -czf "$OUT/$task-$preset-summary.tar.gz" -C /tmp/protocol "$task-$preset"
# (a searched preset's checkpoints are far over it: 41 MB packed for original-size, and the packing
# alone ran a paper-preset call past its 600 s on 2026-12-06)
full=$(du -sb --exclude=tb "$S" | cut -f1)
if [ "$full" -lt 20000000 ]; then
  tar --exclude='tb' -czf "$OUT/$task-$preset.tar.gz" -C /tmp/protocol "$task-$preset"
else
  echo "full folder not packed: $full bytes, over what the device tool returns" | tee -a "$OUT/wall.txt"
fi
cp "$S/table.md" "$OUT/table-$task-$preset.md" 2>/dev/null
