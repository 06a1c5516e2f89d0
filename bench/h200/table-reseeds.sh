#!/usr/bin/env bash
# On the H200 (issue 7): finish the seed re-runs of a committed results folder.
#   bash bench/h200/table-reseeds.sh results/2026-11-29-h200
# (Until 2026-12-02 it took one task folder, results/2026-11-29-h200/induction, per call.)
# sweeps/reseed.py reads the chosen configurations from the folder's trials.jsonl.gz, skips every
# (pair, seed) that already has a completed re-run and continues any cut short, all side by side
# under NVIDIA MPS, each re-run as many epochs as its chosen trial. RESEED_S ends the re-runs
# gracefully so the call stays inside its 10 minutes.
# What comes back: $OUT/reseeds.tgz, the report files and the reseeds folders without checkpoints.
set -u
RESULTS=${1:?results folder}; OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
export CUDA_MPS_PIPE_DIRECTORY=/tmp/seqicl-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/seqicl-mps/log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
MPS=off; nvidia-cuda-mps-control -d && MPS=on
start=$(date +%s)
timeout -s KILL $(( ${RESEED_S:-420} + 60 )) python3 sweeps/reseed.py "$RESULTS" --seeds ${SEEDS:-1,2,3} \
  --gpus-per-trial ${GPT:-0.0416} --cpus-per-trial 0.6 --max-concurrent ${CONC:-24} --time-budget ${RESEED_S:-420} \
  > "$OUT/reseed.log" 2>&1
echo "reseed wall $(( $(date +%s) - start )) s, MPS $MPS" | tee "$OUT/wall.txt"
[ $MPS = on ] && echo quit | nvidia-cuda-mps-control
head -n 20 "$RESULTS/table.md" 2>/dev/null
tar czf "$OUT/reseeds.tgz" --exclude='*.pt' --exclude='tb' -C "$RESULTS" $(cd "$RESULTS" && ls -d */reseeds table.* trials.* best_configs.yaml 2>/dev/null) \
  -C "$PWD" "$OUT/reseed.log" "$OUT/wall.txt"
