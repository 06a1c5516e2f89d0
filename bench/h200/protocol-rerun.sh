#!/usr/bin/env bash
# On the card (issue 27): run some models of a committed table's sweep again, or models it lacks, merge them into it,
# and re-run every chosen configuration that lacks seeds 1 and 2, all in one device call.
#   bash bench/h200/protocol-rerun.sh <committed folder> <models> <seconds> [run.py flags]
# e.g. bash bench/h200/protocol-rerun.sh results/2026-12-06-h100-protocol/associative_recall-original-size s4d,lru 540
# The committed folder's task and preset are read from its sweep.json. The re-run sweep goes to a
# fresh folder; analysis.merge then takes those models' lanes from it and everything else from the
# committed folder (which stays as it is); reseed.py fills in seeds 1 and 2 in the time left. $OUT
# gets the merged folder's summary (records, tables, settings), which replaces the committed one.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
committed=$1 models=$2 seconds=$3; shift 3
export PYTHONUNBUFFERED=1 SEQICL_CACHE=${SEQICL_CACHE:-/tmp/seqicl-cache}
read -r task preset < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1]))['defining']; print(d['task'], d['preset'])" "$committed/sweep.json") \
  || { echo "error: $committed/sweep.json: no task and preset"; exit 2; }
name=$(basename "$committed")
W=${WORK:-/tmp/protocol-rerun}; S=$W/$name-rerun M=$W/$name
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"; date) | tee "$OUT/card.txt"
rm -rf "$S" "$M"; mkdir -p "$W"
start=$(date +%s)
python3 sweeps/run.py --task "$task" --preset "$preset" --models "$models" --storage "$S" --time-budget "$seconds" "$@" \
  > "$OUT/rerun-$name.log" 2>&1; echo "sweep rc $? after $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
tail -n 4 "$OUT/rerun-$name.log"
if grep -q "the time budget ran out" "$OUT/rerun-$name.log"; then
  echo "the re-run did not finish in $seconds s: nothing merged" | tee -a "$OUT/wall.txt"
  tar -czf "$OUT/$name-rerun-summary.tar.gz" --exclude="$name-rerun/$task" -C "$W" "$name-rerun"; exit 1
fi
python3 -m analysis.merge "$M" "$committed" "$S" > "$OUT/merge-$name.log" 2>&1; echo "merge rc $?" | tee -a "$OUT/wall.txt"
cat "$OUT/merge-$name.log"
left=$(( seconds - ($(date +%s) - start) ))
if [ $left -ge 60 ]; then
  python3 sweeps/reseed.py "$M" --seeds 1,2 --time-budget $left > "$OUT/reseed-$name.log" 2>&1
  echo "reseed rc $? in $left s or less" | tee -a "$OUT/wall.txt"; grep -E "^\[|done" "$OUT/reseed-$name.log" | tail -n 20
else
  echo "reseeds left for another call ($left s left)" | tee -a "$OUT/wall.txt"
fi
timeout 60 python3 -m analysis.report "$M" > /dev/null 2>&1
tar -czf "$OUT/$name-summary.tar.gz" --exclude="$name/$task" -C "$W" "$name"
cp "$M/table.md" "$OUT/table-$name.md" 2>/dev/null
