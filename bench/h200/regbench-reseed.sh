#!/usr/bin/env bash
# On the card (issue 29): the chosen configuration of RegBench experiments already committed, trained
# again with other seeds (sweeps/reseed.py), so that a cell's margin over a baseline is set against
# its seed-to-seed spread. The committed results folder holds no trial folders or weights: its
# compact record (trials.jsonl.gz) is enough to re-run the chosen configs.
#   bash bench/h200/regbench-reseed.sh <seconds> <experiments> [seeds, default 1,2,3]
# e.g. bash bench/h200/regbench-reseed.sh 500 transformer-n40000 1,2,3
# EPOCHS=N trains the chosen configuration on a schedule of N epochs instead (reseed.py --epochs: a
# longer recipe, reported beside the chosen one, not averaged with it; seed 0 may run then too), e.g.
#   EPOCHS=60 bash bench/h200/regbench-reseed.sh 560 transformer-n40000 0,1,2
# RESULTS (default results/2026-12-06-h100-regbench) is the committed folder; only the named
# experiments' trials are copied into the work folder, so nothing else is re-run. Every re-run saves
# its state each epoch (--state-every 1): a call cut by its time resumes the re-runs from their last
# epoch when called again with the same arguments on the still-warm machine. $OUT gets the work
# folder's summary (records and tables, no trial folders or weights); here
#   python -m analysis.merge --title "..." <committed folder> <committed folder> <the summary's folder>
# puts the re-runs beside their chosen trials (the report then gives mean +- std over seeds).
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
seconds=$1 experiments=$2 seeds=${3:-1,2,3}
RESULTS=${RESULTS:-results/2026-12-06-h100-regbench}
export PYTHONUNBUFFERED=1 SEQICL_CACHE=${SEQICL_CACHE:-/tmp/seqicl-cache}
W=${WORK:-/tmp/regbench}; name=reseed-${experiments//,/-}; S=$W/$name
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"; date) | tee "$OUT/card.txt"
if [ ! -f "$S/sweep.json" ]; then
  mkdir -p "$S" && cp "$RESULTS/sweep.json" "$S/" || exit 1
  python3 - "$RESULTS/trials.jsonl.gz" "$S/trials.jsonl.gz" "$experiments" <<'EOF' || exit 1
import gzip, json, sys
source, target, names = sys.argv[1], sys.argv[2], {f"dfa/{e}" for e in sys.argv[3].split(",")}
lines = gzip.open(source, "rt").read().splitlines()
kept = [lines[0]] + [line for line in lines[1:] if json.loads(line).get("experiment") in names]
found = {json.loads(line)["experiment"] for line in kept[1:]}
if found != names:
    sys.exit(f"not in {source}: {', '.join(sorted(names - found))}")
with gzip.open(target, "wt") as f:
    f.write("\n".join(kept) + "\n")
print(f"{len(kept) - 1} trials of {', '.join(sorted(found))}")
EOF
fi
start=$(date +%s)
python3 sweeps/reseed.py "$S" --seeds "$seeds" --state-every 1 ${EPOCHS:+--epochs "$EPOCHS"} --time-budget "$seconds" > "$OUT/$name.log" 2>&1
echo "reseed rc $? after $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
grep -E "^\[|reseeds|± " "$OUT/$name.log" | tail -n 12
grep -q "still running, or cut" "$OUT/$name.log" && echo "cut: call again with the same arguments to resume" | tee -a "$OUT/wall.txt"
tar -czf "$OUT/$name-summary.tar.gz" --exclude="$name/dfa" -C "$W" "$name"
cp "$S/table.md" "$OUT/table-$name.md" 2>/dev/null
