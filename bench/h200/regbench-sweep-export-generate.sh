#!/usr/bin/env bash
# On the H200, one device call (issue 4) (what ran on 2026-11-29, as one command line there):
# a RegBench sweep of three models at two training sizes, three sweep drivers sharing one Ray
# cluster, then export of every best checkpoint, generation on 100 held-out DFAs, and the report.
set -u
# Since 2026-12-02 a results folder takes one sweep driver at a time: each driver here has its own.
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled SEQICL_CACHE=/tmp/seqicl-cache
ray start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > /dev/null 2>&1
s=$(date +%s)
for m in transformer lstm h3; do
  timeout -s KILL 300 python3 sweeps/run.py --task dfa --preset paper --address auto --models $m \
    --num-examples 5000,1000 --num-samples 10 --max-concurrent 5 --trials-per-gpu 16 --time-budget 115 \
    --storage "$OUT/dfa/$m" train.epochs=40 train.cuda_graph=true > "$OUT/dfa_$m.log" 2>&1 &
done
wait
echo "sweep wall $(( $(date +%s) - s )) s" | tee "$OUT/dfa_wall.txt"
ray stop > /dev/null 2>&1
timeout 60 python3 -m analysis.export "$OUT/dfa" --all --out "$OUT/dfa/exports" > "$OUT/export.log" 2>&1
for d in "$OUT"/dfa/exports/*/; do
  timeout 40 python3 -m analysis.generate "$d" --num-dfas 100 --samples 4 --seed 0 >> "$OUT/generate.log" 2>&1
done
python3 -m analysis.report "$OUT/dfa" > "$OUT/report.txt" 2>&1; head -n 60 "$OUT/report.txt"
tar czf "$OUT/dfa.tgz" --exclude='*.pt' --exclude='checkpoint_*' --exclude='events.out*' -C "$OUT" dfa
rm -rf "$OUT/dfa"
