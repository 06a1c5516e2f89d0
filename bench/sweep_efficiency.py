"""Sweep efficiency: the README command for one task against the packed ceiling of its own trials.

    python bench/sweep_efficiency.py --task induction --out bench/results/sweep-efficiency-<card>-<date>.md
    python bench/sweep_efficiency.py --task induction --sweep-seconds 420   # SIGINT after 420 s (resumable)
    python bench/sweep_efficiency.py --ceiling-only runs/induction-<time>   # the ceiling of an earlier sweep
    python bench/sweep_efficiency.py --cpu --task induction -- --preset smoke --models lstm   # plumbing

1. **The sweep**: ``python sweeps/run.py --task T --storage S`` plus whatever follows ``--``, timed
   from its start to its exit (Ray's start and stop included: the user's wall time).
2. **What it did**, from its records (``bench/sweep_timeline.py``): trials, epochs and training
   steps per experiment; steps/s over the whole wall time.
3. **The ceiling**: every distinct trial shape the sweep ran (model config, precision, batch,
   vocabulary, sequence length), weighted by the steps the sweep spent on it, heaviest first,
   packed ``slots`` processes at a time as ``bench/packing.py`` packs them (fresh processes, one
   CPU thread each, graph-captured steps of a fixed batch, MPS when it can start), each round for
   ``--ceiling-seconds``; so each shape's steps/s is measured in the company of 15 other shapes of
   the sweep. The ceiling is the rate at which ``slots`` such processes would take the measured
   shapes' steps with no gap between trials: ``slots * steps / sum(steps_s / rate_s)``.
   Efficiency = achieved / ceiling. Shapes past ``--ceiling-rounds`` rounds are left out of the
   ceiling (their share of the steps is printed as what the ceiling does not cover).

What the ceiling leaves out, so the gap includes it: Ray and the workers' start, each trial's
build and capture, evaluation, writes, the round trips of reports, the per-step batch gather and
learning-rate update, slots left idle (the ASHA tail, the driver's bookkeeping).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from seqicl.atomic import atomic_write_text  # noqa: E402

import packing  # noqa: E402  (beside this file)
import sweep_timeline  # noqa: E402
import trial_breakdown  # noqa: E402
from sweeps import mps  # noqa: E402


def run_sweep(task: str, storage: Path, extra: list[str], seconds: float | None, log: Path) -> dict:
    """The README command into ``storage``; SIGINT (a user's Ctrl-C) after ``seconds``."""
    cmd = [sys.executable, str(ROOT / "sweeps" / "run.py"), "--task", task, "--storage", str(storage), *extra]
    started = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        interrupted = False
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            interrupted = True
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return {"command": shlex.join(["python", "sweeps/run.py", "--task", task, *extra]), "started": started,
            "ended": time.time(), "rc": proc.returncode, "interrupted": interrupted}


def slots_of(storage: Path) -> int:
    try:
        return int(json.loads((storage / "sweep.json").read_text())["runs"][-1]["max_concurrent"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise SystemExit(f"error: {storage}/sweep.json names no slot count (max_concurrent)") from None


def shapes_of(storage: Path) -> list[dict]:
    """Each distinct trial shape with the training steps the sweep spent on it, heaviest first."""
    from seqicl.data import load_task
    steps = {(s.experiment, s.trial): s.steps for s in sweep_timeline.spans(storage)}
    facts, shapes = {}, {}
    for exp_dir, folder, run, _, _ in sweep_timeline.trial_records(storage):
        cfg = run["config"]
        task_key = json.dumps(cfg["task"], sort_keys=True)
        if task_key not in facts:  # vocabulary and padded length, as the trial's model saw them
            data = load_task(cfg["task"], cfg["data"]["cache_dir"])
            facts[task_key] = (len(data.vocab), int(data.train.inputs.shape[1]))
        vocab, length = facts[task_key]
        shape = {"model": cfg["model"], "vocab": vocab, "length": length, "batch": cfg["train"]["batch_size"],
                 "optim": cfg["optim"], "grad_clip": cfg["train"]["grad_clip"],
                 "bf16": cfg["train"].get("precision") == "bf16"}
        key = json.dumps({k: v for k, v in shape.items() if k != "optim"}, sort_keys=True)
        entry = shapes.setdefault(key, {**shape, "steps": 0, "trials": 0})
        entry["steps"] += steps.get((exp_dir.relative_to(storage).as_posix(), folder.name), 0)
        entry["trials"] += 1
    return sorted((s for s in shapes.values() if s["steps"] > 0), key=lambda s: -s["steps"])


def measure_ceiling(shapes: list[dict], slots: int, seconds: float, rounds: int, cpu: bool, use_mps: bool) -> dict:
    """Pack the heaviest shapes ``slots`` at a time; each measured shape's steps/s in its round."""
    rates, notes = {}, []
    measured = shapes[:slots * rounds]
    if use_mps and not mps.start_mps():
        notes.append(f"MPS did not start ({mps.last_error}): packed without it")
        use_mps = False
    card = "CPU"
    try:
        for r in range(0, len(measured), slots):
            group = measured[r:r + slots]  # a short last round repeats its shapes to fill the slots
            opts = {"graph": not cpu, "seconds": seconds, "cpu": cpu, "shapes": group}
            row = packing.run_row(slots, opts)
            card = row["card"]
            if row["why"]:
                notes.append(f"a step ran eagerly: {row['why']}")
            for rank, rate in row["per_rank"].items():
                rates.setdefault(r + rank % len(group), []).append(rate)
            print(f"ceiling round {r // slots + 1}: {len(group)} shapes, {row['total']:.0f} steps/s", flush=True)
    finally:
        if use_mps:
            mps.stop_mps()
    for i, s in enumerate(measured):
        s["rate"] = sum(rates[i]) / len(rates[i])
    steps = sum(s["steps"] for s in measured)
    ceiling = slots * steps / sum(s["steps"] / s["rate"] for s in measured) if measured else 0.0
    return {"ceiling": ceiling, "measured": measured, "covered": steps / max(1, sum(s["steps"] for s in shapes)),
            "card": card, "mps": use_mps, "notes": notes}


def describe(shape: dict) -> str:
    m = shape["model"]
    mixer = {k: v for k, v in (m.get("mixer") or {}).items() if v is not None and not isinstance(v, (dict, list))}
    extra = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(mixer.items())
                      if k != "name")
    return f"{m['name']} d{m.get('d_model')} x{m.get('n_layers')}" + (f" ({extra})" if extra else "") + (
        " bf16" if shape["bf16"] else "")


def report(storage: Path, sweep: dict | None, result: dict, slots: int, command: str, seconds: float) -> str:
    spans = sweep_timeline.spans(storage)
    since = sweep["started"] if sweep else min(s.start for s in spans)
    until = sweep["ended"] if sweep else max(s.end for s in spans)
    wall = until - since
    total = sum(s.steps for s in spans)
    achieved = total / max(wall, 1e-9)
    lines = [f"# Sweep efficiency: {result['card']}, {datetime.date.today()}", "", f"    {command}", ""]
    if sweep:
        lines += [f"The sweep: `{sweep['command']}` (exit {sweep['rc']}"
                  + (", stopped by SIGINT at the time limit: resumable, not complete" if sweep["interrupted"] else "")
                  + f"), {wall:.0f} s of wall time from its start to its exit, {slots} slots.", ""]
    else:
        lines += [f"The sweep in `{storage}`, from its first trial's start to its last record ({wall:.0f} s); "
                  f"{slots} slots.", ""]
    lines += ["| experiment | trials | ended | epochs | steps | epochs/trial |", "|---|---:|---:|---:|---:|---:|"]
    for name in sorted({s.experiment for s in spans}):
        mine = [s for s in spans if s.experiment == name]
        ended = sum(s.status in sweep_timeline.FINAL for s in mine)
        epochs = sum(s.epochs for s in mine)
        lines.append(f"| {name} | {len(mine)} | {ended} | {epochs} | {sum(s.steps for s in mine)} | "
                     f"{epochs / len(mine):.1f} |")
    lines += ["", f"- steps/s over the whole wall time: **{achieved:.0f}** ({total} steps in {wall:.0f} s)",
              f"- packed ceiling of the same shapes: **{result['ceiling']:.0f}** steps/s ({slots} processes at a "
              f"time, {seconds:g} s per round, MPS {'on' if result['mps'] else 'off'}; the measured shapes "
              f"took {100 * result['covered']:.1f}% of the sweep's steps)",
              f"- efficiency: **{100 * achieved / result['ceiling']:.0f}%**" if result["ceiling"] else "- efficiency: ?",
              "", "| shape | trials | share of steps | packed steps/s per process |", "|---|---:|---:|---:|"]
    for s in result["measured"]:
        lines.append(f"| {describe(s)} | {s['trials']} | {100 * s['steps'] / max(total, 1):.1f}% | {s['rate']:.0f} |")
    lines += [""] + [f"- {n}" for n in result["notes"]]
    last_rows = [rows[-1] for _, _, _, _, rows in sweep_timeline.trial_records(storage) if rows]
    lines += ["", "Where the slots' time went: " + trial_breakdown.slot_shares(last_rows, wall, slots)]
    lines += ["", "## Slots over time", "", sweep_timeline.timeline(storage, since, until, slots), "",
              "## Per trial (ended trials; shares of each trial's wall time)", "",
              trial_breakdown.breakdown(storage)]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="induction")
    p.add_argument("--storage", default=None, help="the sweep's results folder (default: a new temporary one)")
    p.add_argument("--sweep-seconds", type=float, default=None, help="stop the sweep (SIGINT) after this long")
    p.add_argument("--ceiling-only", default=None, metavar="RESULTS", help="measure the ceiling of this sweep")
    p.add_argument("--ceiling-seconds", type=float, default=10.0, help="stepping per packed round")
    p.add_argument("--ceiling-rounds", type=int, default=3, help="packed rounds (slots shapes each), heaviest first")
    p.add_argument("--no-mps", action="store_true", help="pack the ceiling without MPS")
    p.add_argument("--cpu", action="store_true", help="plumbing check on a CPU (eager steps, no MPS)")
    p.add_argument("--out", default=None, help="also write the Markdown report here")
    p.add_argument("sweep_args", nargs="*", help="after --: more sweeps/run.py arguments")
    args = p.parse_args(argv)
    if args.ceiling_rounds < 1 or args.ceiling_seconds <= 0:
        p.error("--ceiling-rounds must be at least 1 and --ceiling-seconds positive")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.cpu:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # no CUDA context here: MPS must start first
        import torch
        if not torch.cuda.is_available():
            print("error: needs a CUDA GPU (or --cpu for a plumbing check)", file=sys.stderr)
            return 2
    sweep = None
    if args.ceiling_only:
        storage = Path(args.ceiling_only).resolve()
        if not (storage / "sweep.json").is_file():
            print(f"error: {storage}: not a sweep's results folder (no sweep.json)", file=sys.stderr)
            return 2
    else:
        storage = Path(args.storage or tempfile.mkdtemp(prefix="seqicl-efficiency-")).resolve()
        if args.storage is None:
            storage.rmdir()  # run.py makes it: an existing folder would be a sweep to resume
        log = storage.parent / f"{storage.name}.log"
        sweep = run_sweep(args.task, storage, args.sweep_args, args.sweep_seconds, log)
        print(f"sweep: exit {sweep['rc']} after {sweep['ended'] - sweep['started']:.0f} s (log: {log})", flush=True)
        if not (storage / "sweep.json").is_file():
            print("error: the sweep wrote no results; the end of its log:\n"
                  + "\n".join(log.read_text(errors="replace").splitlines()[-5:]), file=sys.stderr)
            return 1
    shapes = shapes_of(storage)
    if not shapes:
        print(f"error: {storage}: no trial trained a step", file=sys.stderr)
        return 1
    slots = slots_of(storage)
    use_mps = not (args.cpu or args.no_mps) and mps.mps_available() is None
    result = measure_ceiling(shapes, slots, args.ceiling_seconds, args.ceiling_rounds, args.cpu, use_mps)
    text = report(storage, sweep, result, slots, shlex.join(["python", "bench/sweep_efficiency.py", *argv]),
                  args.ceiling_seconds)
    print("\n" + text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
