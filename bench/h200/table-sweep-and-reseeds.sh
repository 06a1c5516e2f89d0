#!/usr/bin/env bash
# On the H200 (issue 7): the paper-preset sweep of one task for all seven models, then the best
# configuration of every model again with three more seeds, in one device call.
#   bash bench/h200/table-sweep-and-reseeds.sh associative_recall      (or induction)
# The seven models sweep side by side: one Ray head, one sweep driver per model, the packed
# trials under NVIDIA MPS (4.2x the steps/s of 16 packed trials without it, bench/results/).
# Each driver runs at most CONC trials at once: with reused trial processes, drivers that get
# their slots first otherwise keep them all and starve the rest (seen on the H200: two models of
# seven got every slot). 7 drivers x 3 = 21 trials on the GPU (TPG), 0.75 logical CPU each.
# SWEEP_S caps each model's experiment and RESEED_S the re-runs (--time-budget), so the call ends
# inside its 10 minutes.
# A dry run on a CPU: MODELS="lstm gilr" SAMPLES=2 SWEEP_S=30 EXTRA="train.epochs=3" bash ...
set -u
# Since 2026-12-02 a results folder takes one sweep driver at a time: each driver here has its own.
TASK=${1:?task}; OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled SEQICL_CACHE=/tmp/seqicl-cache
export CUDA_MPS_PIPE_DIRECTORY=/tmp/seqicl-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/seqicl-mps/log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
MPS=off; nvidia-cuda-mps-control -d && MPS=on   # before Ray: its workers then join MPS
ray start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$OUT/ray.log" 2>&1
RES="$OUT/$TASK"
start=$(date +%s)
for m in ${MODELS:-transformer s4d h3 gilr lru lstm rwkv}; do
  timeout -s KILL $(( ${SWEEP_S:-360} + 60 )) python3 sweeps/run.py --task "$TASK" --preset paper --address auto \
    --models "$m" --num-samples ${SAMPLES:-64} --max-concurrent ${CONC:-3} --trials-per-gpu ${TPG:-21} --cpus-per-trial 0.75 \
    --time-budget ${SWEEP_S:-360} --storage "$RES/$m" ${EXTRA:-} > "$OUT/sweep_$m.log" 2>&1 &
done
wait
sweep_s=$(( $(date +%s) - start ))
start=$(date +%s)
timeout -s KILL $(( ${RESEED_S:-120} + 60 )) python3 sweeps/reseed.py "$RES" --seeds 1,2,3 --address auto \
  --gpus-per-trial 0.0476 --cpus-per-trial 0.75 --max-concurrent 21 --time-budget ${RESEED_S:-120} > "$OUT/reseed.log" 2>&1
reseed_s=$(( $(date +%s) - start ))
ray stop > /dev/null 2>&1
[ $MPS = on ] && echo quit | nvidia-cuda-mps-control
echo "task $TASK: sweep wall $sweep_s s, reseed wall $reseed_s s, MPS $MPS" | tee "$OUT/wall.txt"
grep -h "ended after\|diverged after\|errored" "$OUT"/sweep_*.log | wc -l
python3 -m analysis.report "$RES" | head -n 40
tar czf "$OUT/$TASK.tgz" --exclude='*.pt' --exclude='checkpoint_*' --exclude='events.out*' -C "$OUT" "$TASK"
rm -rf "$RES"
