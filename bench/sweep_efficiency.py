"""Sweep efficiency: the README's command against the same trials packed without Ray.

    python bench/sweep_efficiency.py --task induction --out bench/results/sweep-efficiency-<task>-<card>-<date>.md
    python bench/sweep_efficiency.py --task induction --cpu     # plumbing check on a CPU (not a measurement)

1. Runs ``python sweeps/run.py --task <task> --storage <dir>`` (the README's command; extra
   arguments after ``--`` go to it) and times its whole wall time, Ray's start and the report
   included.
2. Counts the training steps it took: per trial, epochs trained x steps per epoch.
   Achieved = all steps / wall time.
3. The packed ceiling, in the same run on the same card: 16 processes (``bench/packing.py``'s
   worker, graph-captured steps, under MPS as the sweep ran) step trials of the sweep's own
   shapes, picked at evenly spaced quantiles of the sweep's steps (so a shape that took half the
   steps is half the processes), all at once for ``--seconds``; ceiling = their summed steps/s.
   Efficiency = achieved / ceiling.
4. Where the trials' time went (from the records: setup, training steps, evaluation, saving) and
   the slot time no trial used (Ray's start, scheduling, the tail), and each model's best test
   accuracy beside ``results/2026-11-29-h200`` (best single run; mean ± std over its seeds).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from seqicl.atomic import atomic_write_text  # noqa: E402

from sweeps import mps  # noqa: E402

REFERENCE = ROOT / "results" / "2026-11-29-h200" / "table.json"


def trial_rows(storage: Path) -> list[dict]:
    """One dict per sweep trial: model, shape, steps taken and where its time went."""
    from analysis.results import load_trials
    from seqicl.data import load_task
    from seqicl.train.record import RunRecord
    shapes, rows = {}, []
    for t in load_trials(storage):
        if t.role != "sweep" or not t.config:
            continue
        cfg = t.config
        key = json.dumps(cfg["task"], sort_keys=True)
        if key not in shapes:
            data = load_task(cfg["task"], cfg["data"]["cache_dir"])
            shapes[key] = (len(data.vocab), data.train.inputs.shape[1])
        vocab, length = shapes[key]
        per_epoch = cfg["task"]["num_train"] // cfg["train"]["batch_size"]
        record = RunRecord(t.path)
        last = t.epochs[-1] if t.epochs else {}
        try:
            wall = record.status()["updated"] - record.run()["started"]
        except Exception:
            wall = 0.0
        rows.append({"model": t.model, "status": t.status, "epochs": t.epochs_run, "steps": t.epochs_run * per_epoch,
                     "test": t.test_at_best, "val": t.best_val, "wall": wall,
                     "setup": last.get("setup_s", 0.0), "eval": last.get("eval_s", 0.0), "save": last.get("save_s", 0.0),
                     "train": last.get("time_total_s", 0.0) - last.get("eval_s", 0.0),
                     "shape": {"model": cfg["model"], "vocab": vocab, "length": length,
                               "batch": cfg["train"]["batch_size"], "optim": cfg["optim"]}})
    return rows


def pick_shapes(rows: list[dict], n: int) -> list[dict]:
    """``n`` trial shapes at the quantiles (k + 0.5) / n of the sweep's cumulative steps."""
    rows = sorted((r for r in rows if r["steps"] > 0), key=lambda r: (r["model"], json.dumps(r["shape"], sort_keys=True)))
    total = sum(r["steps"] for r in rows)
    picked, acc, k = [], 0, 0
    for r in rows:
        acc += r["steps"]
        while k < n and (k + 0.5) / n * total <= acc:
            picked.append(r["shape"])
            k += 1
    return picked


def reference(task: str) -> dict:
    if not REFERENCE.is_file():
        return {}
    return {r["model"]: r for r in json.loads(REFERENCE.read_text()) if r["task"] == task}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="induction")
    p.add_argument("--storage", default=None, help="results folder of the sweep (default: a new temporary one)")
    p.add_argument("--seconds", type=float, default=None, help="packed stepping (default 20; --cpu: 2)")
    p.add_argument("--procs", type=int, default=16, help="packed processes (the sweep's trials per GPU)")
    p.add_argument("--out", default=None)
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU: eager, no MPS, tiny budgets")
    p.add_argument("--deadline", type=float, default=None,
                   help="stop the sweep (SIGTERM) after this many seconds and report what it did by then")
    p.add_argument("run_args", nargs="*", help="after --: more arguments for sweeps/run.py")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    seconds = args.seconds if args.seconds is not None else (2.0 if args.cpu else 20.0)
    storage = Path(args.storage or tempfile.mkdtemp(prefix="seqicl-efficiency-")) / args.task
    command = [sys.executable, "sweeps/run.py", "--task", args.task, "--storage", str(storage), *args.run_args]
    print("$", shlex.join(command), flush=True)
    started = time.time()
    sweep_proc = subprocess.Popen(command, cwd=ROOT)
    try:
        returncode = sweep_proc.wait(timeout=args.deadline)
        cut = False
    except subprocess.TimeoutExpired:  # the sweep saves its state and stops Ray on SIGTERM
        cut = True
        sweep_proc.terminate()
        try:
            sweep_proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            sweep_proc.kill()
            sweep_proc.wait()
        returncode = 0
    wall = time.time() - started
    if returncode != 0:
        print(f"error: the sweep exited with {returncode}", file=sys.stderr)
        return 1
    sweep = json.loads((storage / "sweep.json").read_text())
    run_settings = sweep["runs"][-1]
    slots, used_mps = run_settings["max_concurrent"], run_settings["mps"] != "off"
    rows = trial_rows(storage)

    from packing import run_row  # bench/packing.py: the same worker as its table
    shapes = pick_shapes(rows, args.procs)
    started_mps = False
    if used_mps and not mps.running():
        started_mps = mps.start_mps()
    try:
        packed = run_row(len(shapes), {"model": "transformer", "graph": not args.cpu, "seconds": seconds,
                                       "cpu": args.cpu, "shapes": shapes})
    finally:
        if started_mps:
            mps.stop_mps()

    steps = sum(r["steps"] for r in rows)
    achieved = steps / wall
    ratio = achieved / packed["total"]
    by_model = defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    ref = reference(sweep["defining"]["task"] if "defining" in sweep else args.task)
    from analysis.names import MODEL_NAMES
    lines = [f"# Sweep efficiency, {args.task}: {packed['card']}, {datetime.date.today()}", "",
             f"`{shlex.join(['python', 'bench/sweep_efficiency.py', *(sys.argv[1:] if argv is None else argv)])}`", "",
             f"The sweep: `{shlex.join(['python', 'sweeps/run.py', '--task', args.task, '--storage', '<dir>', *args.run_args])}`"
             f" ({slots} trials at once{', under MPS' if used_mps else ''}).", "",
             *([f"**Not finished: stopped by `--deadline` after {args.deadline:g} s** (then {wall:.0f} s with Ray's "
                "shut-down); every figure below covers that much of the sweep, and the best cells are those found by "
                "then.", ""] if cut else []),
             "| wall time | trials | training steps | steps/s achieved | packed ceiling steps/s | efficiency |",
             "|---:|---:|---:|---:|---:|---:|",
             f"| {wall:.0f} s | {len(rows)} | {steps:,} | {achieved:,.0f} | {packed['total']:,.0f} | {ratio:.0%} |", "",
             f"Ceiling: {len(shapes)} processes at once for {seconds:g} s, each stepping one of the sweep's trial shapes "
             "(picked at evenly spaced quantiles of its steps), graph-captured"
             f"{', under MPS' if used_mps else ''}.", "",
             "| model | trials | finished | stopped | epochs | steps | best test (%) | 2026-11-29-h200 best | its seeds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    from analysis.results import best_trial, load_trials
    best = {}
    for t in load_trials(storage):
        if t.role == "sweep":
            best.setdefault(t.model, []).append(t)
    for model, rs in by_model.items():
        b = best_trial(best[model])
        r0 = ref.get(model, {})
        seeds = (f"{100 * r0['seed_mean']:.1f} ± {100 * r0['seed_std']:.1f} (n={r0['seed_n']})"
                 if r0.get("seed_n") else "-")
        lines.append(f"| {MODEL_NAMES.get(model, model)} | {len(rs)} | {sum(r['status'] == 'finished' for r in rs)} | "
                     f"{sum(r['status'] == 'stopped' for r in rs)} | {sum(r['epochs'] for r in rs):,} | "
                     f"{sum(r['steps'] for r in rs):,} | {100 * (b.test_at_best or 0):.1f} | "
                     f"{100 * r0['test']:.1f} | {seeds} |" if r0 else
                     f"| {MODEL_NAMES.get(model, model)} | {len(rs)} | {sum(r['status'] == 'finished' for r in rs)} | "
                     f"{sum(r['status'] == 'stopped' for r in rs)} | {sum(r['epochs'] for r in rs):,} | "
                     f"{sum(r['steps'] for r in rs):,} | {100 * (b.test_at_best or 0):.1f} | - | - |")
    slot_time = wall * slots
    spent = {k: sum(r[k] for r in rows) for k in ("setup", "train", "eval", "save", "wall")}
    other = spent["wall"] - spent["setup"] - spent["train"] - spent["eval"] - spent["save"]
    lines += ["", "Where the slot time went (slot-seconds = wall time x trials at once; from the trial records):", "",
              "| training steps | evaluation | saving | setup (build, graph capture) | other inside trials (reports, "
              "Python) | no trial running (Ray start, scheduling, tail) |", "|---:|---:|---:|---:|---:|---:|",
              "| " + " | ".join(f"{v:,.0f} s ({v / slot_time:.0%})" for v in (
                  spent["train"], spent["eval"], spent["save"], spent["setup"], max(0.0, other),
                  max(0.0, slot_time - spent["wall"]))) + " |"]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # no CUDA context here before MPS
    sys.exit(main())
