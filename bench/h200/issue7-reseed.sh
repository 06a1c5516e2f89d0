#!/usr/bin/env bash
# Issue 7 on the H200: finish the seed re-runs of a committed results folder, one task per call.
#   bash bench/h200/issue7-reseed.sh results/2026-11-29-h200/induction
# sweeps/reseed.py skips every (pair, seed) that already has a completed re-run, so this trains
# only what is missing, all side by side under NVIDIA MPS, each re-run as many epochs as its
# chosen trial. RESEED_S ends the re-runs gracefully so the call stays inside its 10 minutes.
# What comes back: $OUT/reseeds.tgz, the new reseeds-* experiment folder(s) of that task folder.
# The re-runs read only the trial folders: where a transfer limit bites, send the task folder
# without Tune's experiment_state-*.json files (as on 2026-11-29, wheels and results being 76 MiB).
set -u
TASK_DIR=${1:?task folder}; OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled SEQICL_CACHE=/tmp/seqicl-cache
export CUDA_MPS_PIPE_DIRECTORY=/tmp/seqicl-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/seqicl-mps/log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
MPS=off; nvidia-cuda-mps-control -d && MPS=on
ray start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$OUT/ray.log" 2>&1
before=$(ls -d "$TASK_DIR"/reseeds* 2>/dev/null)
start=$(date +%s)
timeout -s KILL $(( ${RESEED_S:-420} + 60 )) python3 sweeps/reseed.py "$TASK_DIR" --seeds ${SEEDS:-1,2,3} --address auto \
  --gpus-per-trial ${GPT:-0.0416} --cpus-per-trial 0.6 --max-concurrent ${CONC:-24} --time-budget ${RESEED_S:-420} \
  > "$OUT/reseed.log" 2>&1
echo "reseed wall $(( $(date +%s) - start )) s, MPS $MPS" | tee "$OUT/wall.txt"
ray stop > /dev/null 2>&1
[ $MPS = on ] && echo quit | nvidia-cuda-mps-control
new=$(comm -13 <(echo "$before" | tr ' ' '\n' | sort) <(ls -d "$TASK_DIR"/reseeds* | sort))
head -n 20 "$TASK_DIR/table.md" 2>/dev/null
tar czf "$OUT/reseeds.tgz" --exclude='*.pt' --exclude='checkpoint_*' --exclude='events.out*' \
  --exclude='*.pkl' --exclude='progress.csv' $new "$OUT/reseed.log" "$OUT/wall.txt"
