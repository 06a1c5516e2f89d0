#!/usr/bin/env bash
# On the H200 (issue 13): the GPU tests, a run interrupted and resumed on the GPU against an
# uninterrupted one (bench/resume_exactness.py), and a packed sweep killed with SIGKILL mid-way and
# resumed, with every TCP listener on the machine recorded while it runs.
set -u
OUT=${OUT:-h200-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQICL_CACHE=/tmp/seqicl-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
timeout 200 python3 -m pytest -q -m gpu tests/ > "$OUT/pytest_gpu.txt" 2>&1; tail -n 3 "$OUT/pytest_gpu.txt"
for m in transformer lru; do timeout 60 python3 bench/resume_exactness.py --model $m | tee -a "$OUT/resume.md"; done
S=/tmp/sweep; rm -rf $S
args="--task induction --models transformer,lstm --num-samples 16 --trials-per-gpu 8 --max-concurrent 8 --storage $S train.epochs=20"
start=$(date +%s)
python3 sweeps/run.py $args > "$OUT/sweep1.log" 2>&1 &
pid=$!
sleep 45
python3 - > "$OUT/listeners-during.txt" <<'PY'   # no ss there: every listening TCP socket, from /proc
import os, sys
sys.path.insert(0, "tests")
from procs import listeners_of, is_loopback
pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
for pid, addr, port in sorted(listeners_of(pids), key=lambda x: x[2]):
    name = open(f"/proc/{pid}/comm").read().strip()
    print(f"{'loopback' if is_loopback(addr) else 'OPEN    '} {addr}:{port} pid {pid} {name}")
PY
kill -9 $pid; wait $pid 2>/dev/null
sleep 5
timeout 300 python3 sweeps/run.py --resume --storage $S > "$OUT/sweep2.log" 2>&1; echo "resume rc $?" | tee -a "$OUT/wall.txt"
echo "sweep wall $(( $(date +%s) - start )) s (kill at 45 s)" | tee -a "$OUT/wall.txt"
grep -c " trial " "$OUT"/sweep?.log
head -n 30 $S/table.md
python3 - "$S" <<'PY' | tee "$OUT/records.txt"
import sys, json
from pathlib import Path
from analysis.results import load_trials
ts = load_trials(sys.argv[1])
bad = [t.trial_id for t in ts if [r["epoch"] for r in map(json.loads, (t.path / "epochs.jsonl").read_text().splitlines())] != list(range(1, t.epochs_run + 1))]
print(len(ts), "trials;", {s: sum(t.status == s for t in ts) for s in ("finished", "stopped", "diverged", "errored", "running")}, "; records with a repeated or missing epoch:", bad)
PY
cp $S/table.md "$OUT/table.md"; cp $S/trials.jsonl.gz "$OUT/"
