#!/usr/bin/env bash
# On the card (issue 29): one column of the RegBench learning curve, model after model, in as many
# calls on one warm machine as it takes.
#   bash bench/h200/regbench-column.sh <seconds> <models> [run.py flags and overrides]
# e.g. bash bench/h200/regbench-column.sh 540 lstm,h3,s4d,rwkv,gilr,lru --num-examples 40000
# Models joined by + share one slice (one sweep: their trials run at once, up to the preset's 16;
# e.g. mamba+hyena+h3+rwkv,gla+s4d+lru+retnet), which keeps the card busier than one model's few
# trials; a slice cut by the session's end keeps only each model's best trial so far, exported and
# generated in the call's last RESERVE seconds where they suffice. Each item is one slice
# (bench/h200/regbench-slice.sh, named <model>-n<SIZE>, models joined by -), run with the
# seconds left in this call less RESERVE (default 90 s; more for Mamba, whose generation takes longest)
# for its export and generation. A slice the call cuts, or whose export or generation did not finish,
# resumes first in the next call (same arguments, same warm machine: trial states stay in /tmp); a
# finished one is skipped. EXPORT=0 (passed on to the slices) skips exports, for the sizes below
# 40k, e.g. SIZE=small EXPORT=0 bash bench/h200/regbench-column.sh 560 lstm+gilr --num-examples 1000,2500,5000
# (SIZE then only names the slice). $OUT gets one archive
# of every slice's summary (the device tool brings back at most 8 files) and the column's log.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
seconds=$1 models=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
W=${WORK:-/tmp/regbench}; size=${SIZE:-40000}
reserve=${RESERVE:-90}   # seconds kept after a slice's sweep for its export and generation, and packing up
export WORK=$W SIZE=$size
start=$(date +%s)
log=$OUT/column.log
: > "$log"
for group in ${models//,/ }; do
  name=${group//+/-}-n$size
  if [ -f "$W/$name.done" ]; then echo "$name: done in an earlier call" | tee -a "$log"; continue; fi
  left=$(( seconds - ($(date +%s) - start) - reserve ))
  if [ $left -lt 90 ]; then echo "$name: not started ($left s left in this call)" | tee -a "$log"; continue; fi
  mkdir -p "$W/out-$name"
  # DEADLINE: a cut slice still exports and generates from its best trials so far in what is left
  OUT=$W/out-$name DEADLINE=$(( start + seconds - 15 )) bash "$here/regbench-slice.sh" "$name" "$left" \
    --models "${group//+/,}" "$@" >> "$log" 2>&1
  missing="" have=""
  [ "${EXPORT:-1}" = 1 ] && for m in ${group//+/ }; do
    if [ -f "$W/$name/exports/dfa-$m-n$size/generation-greedy.json" ]; then have="$have $m"; else missing="$missing $m"; fi
  done
  if grep -q "^sweep rc [1-9]" "$W/out-$name/wall.txt" 2>/dev/null; then
    echo "$name: the sweep failed ($(head -n 1 "$W/out-$name/wall.txt")): out-$name/sweep-$name.log says why" | tee -a "$log"
  elif grep -q "slice not complete" "$W/out-$name/wall.txt" 2>/dev/null; then
    echo "$name: cut by this call's time; it resumes first in the next call (exported and generated from the best trials so far:${have:- none})" | tee -a "$log"
  elif [ -n "$missing" ]; then
    echo "$name: swept, but the export or generation of$missing did not finish (out-$name/*.log); the next call tries again" | tee -a "$log"
  else
    touch "$W/$name.done"; echo "$name: complete" | tee -a "$log"
  fi
done
# every slice's summary, done or not (the slices' own tarballs and logs), in one archive
(cd "$W" && tar -czf "$OUT/column-n$size.tar.gz" out-*) 2>> "$log"
echo "column: $(( $(date +%s) - start )) s in this call" | tee -a "$log"
