#!/usr/bin/env bash
# On the card (issue 29): one slice of the RegBench learning curve, resumable on a warm machine,
# then, once the slice is complete, export and generation from its 40k winners.
#   bash bench/h200/regbench-slice.sh <name> <seconds> [run.py flags: --models, --num-examples, overrides]
# e.g. bash bench/h200/regbench-slice.sh transformer-40k 540 --models transformer --num-examples 40000 train.precision=bf16
# A device machine keeps /tmp only while it stays warm, and a trial's states (hundreds of MB at
# these sizes) cannot travel back, so a slice must end within one session: call again with the same
# name (on the still-warm machine) to resume it. $OUT gets the slice's summary (records, tables,
# settings, generation summaries; no checkpoints), which `python -m analysis.merge` joins with the
# other slices here. The export of a 40k winner is named dfa-<model>-n40000 in every slice.
# EXPORT=0 skips the export and generation (sizes below 40k: --num-examples 1000,2500,5000).
# DEADLINE (epoch seconds, set by regbench-column.sh) is when this call must be packed up: given one,
# a slice cut by its time budget still exports and generates from each model's best trial so far
# while time is left (a session may get no next call to resume it in); a resume drops those exports.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
name=$1 seconds=$2; shift 2
# a trial in one phase for 180 s (packed epochs take 60-125 s) writes its threads' stacks to its
# stall-stacks.txt, which the logs archive below carries back
export PYTHONUNBUFFERED=1 SEQICL_CACHE=${SEQICL_CACHE:-/tmp/seqicl-cache} SEQICL_STALL_DUMP_S=${SEQICL_STALL_DUMP_S:-180}
W=${WORK:-/tmp/regbench}; S=$W/$name; size=${SIZE:-40000}   # the size whose winners are exported
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"; date) | tee "$OUT/card.txt"
mkdir -p "$W"
resume=(); [ -f "$S/sweep.json" ] && resume=(--resume)
deadline=${DEADLINE:-0}
# exports made from a cut slice are of its best trials so far: stale once it resumes
[ -f "$S/.cut" ] && rm -rf "$S/exports" "$S/.cut"
start=$(date +%s)
python3 sweeps/run.py --task dfa --preset regbench --storage "$S" --time-budget "$seconds" "${resume[@]}" "$@" \
  > "$OUT/sweep-$name.log" 2>&1; echo "sweep rc $? after $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
grep -E "^\[|progress|done|left" "$OUT/sweep-$name.log" | tail -n 16
cut=0
if grep -q "the time budget ran out" "$OUT/sweep-$name.log"; then
  cut=1; touch "$S/.cut"
  echo "slice not complete: call again with the same name to resume it" | tee -a "$OUT/wall.txt"
fi
# seconds left before the deadline for one more step, keeping 30 for the report and packing (none: 300)
left() { if [ "$deadline" -gt 0 ]; then echo $(( deadline - $(date +%s) - 30 )); else echo 300; fi; }
# EXPORT=0: no export or generation (the sizes below 40k, where the issue asks for none)
if [ "${EXPORT:-1}" = 1 ] && { [ $cut = 0 ] || [ "$deadline" -gt 0 ]; }; then
  # the 40k winner of every model in the slice: export, then greedy and T=1 generation on 100 held-out DFAs
  models=$(python3 -c "import json,sys; print(' '.join(sorted({e.split('-n')[0] for e in json.load(open(sys.argv[1]))['defining']['experiments'] if e.endswith('-n'+sys.argv[2])})))" "$S/sweep.json" "$size")
  for m in $models; do
    e=$S/exports/dfa-$m-n$size
    [ -f "$e/generation-greedy.json" ] && continue
    if [ "$(left)" -lt 30 ]; then echo "$m: no time left for its export and generation" | tee -a "$OUT/wall.txt"; continue; fi
    # an export is written whole or not at all: one left by an earlier call whose generation did not finish is reused
    t=$(left); { [ -f "$e/weights.pt" ] || timeout $(( t < 120 ? t : 120 )) python3 -m analysis.export "$S" --task dfa \
        --model "$m" --num-train "$size" --out "$e" >> "$OUT/export-$name.log" 2>&1; } \
      && t=$(left) && [ "$t" -gt 0 ] && timeout $(( t < 300 ? t : 300 )) python3 -m analysis.generate "$e" \
        --num-dfas 100 --samples 4 --seed 0 >> "$OUT/generate-$name.log" 2>&1
    rc=$?; [ $cut = 1 ] && note=", from the best trial so far (cut slice)" || note=""
    echo "$m: export and generation rc $rc ($(( $(date +%s) - start )) s in$note)" | tee -a "$OUT/wall.txt"
  done
fi
timeout 120 python3 -m analysis.report "$S" > /dev/null 2>&1
tar -czf "$OUT/$name-summary.tar.gz" --exclude="$name/dfa" --exclude='*.pt' -C "$W" "$name"
# what a stalled or failed trial left: its own records (no weights) and the last 300 lines of each
# of this sweep's Ray worker logs (a trial's prints and tracebacks), a few hundred kB in all
logs=$OUT/$name-logs; rm -rf "$logs"; mkdir -p "$logs/ray"
(cd "$W" && find "$name/dfa" -name '*.json' -o -name '*.jsonl' -o -name stall-stacks.txt | tar -czf "$logs/trials.tar.gz" -T -) 2>/dev/null
for f in /tmp/ray/session_latest/logs/worker-*.out /tmp/ray/session_latest/logs/worker-*.err; do
  [ -s "$f" ] && tail -n 300 "$f" > "$logs/ray/$(basename "$f")"
done
tar -czf "$OUT/$name-logs.tar.gz" -C "$OUT" "$name-logs" && rm -rf "$logs"
cp "$S/table.md" "$OUT/table-$name.md" 2>/dev/null
