"""What a sweep did with its time, read from its records alone: per experiment, when its first
trial started, how many trials started and ended, the epochs and training steps they ran; and for
the whole sweep, how busy its slots were over time.

    python bench/sweep_timeline.py <results folder> [--since T0] [--until T1] [--slots N]

``--since``: the driver's start (unix seconds; default: the earliest trial start), the origin of
every time printed. ``--until``: the end of the window (default: the last record's last word).
``--slots``: trials at once (default: ``max_concurrent`` of the sweep's last run in sweep.json).
A trial's start is its ``run.json`` "started", written once its data and model are built (so a
little after Tune started it); its end is its final status's time, or for a trial still running
(an interrupted sweep) its last recorded epoch. Epochs are those trained, recorded or not
(``eval_every``); steps are epochs times the trial's steps per epoch (train size / batch size).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqicl.train.record import FINAL, RecordError, RunRecord  # noqa: E402


@dataclass
class Span:
    experiment: str
    trial: str
    start: float
    end: float
    status: str
    epochs: int
    steps: int


def trial_records(root: Path):
    """(experiment folder, trial folder, run.json, status.json, epoch rows) of every readable
    trial record of a sweep's results folder, in path order."""
    for run_json in sorted(root.glob("*/*/trials/*/run.json")):
        record = RunRecord(run_json.parent)
        try:
            yield run_json.parent.parent.parent, run_json.parent, record.run(), record.status(), record.epochs()
        except RecordError:
            continue


def spans(root: Path) -> list[Span]:
    out = []
    for exp_dir, folder, run, status, rows in trial_records(root):
        epochs = max(status.get("epochs") or 0, rows[-1]["epoch"] if rows else 0)
        if status["status"] in FINAL:
            end = status["updated"]
        else:
            end = rows[-1].get("timestamp", run["started"]) if rows else run["started"]
        cfg = run["config"]
        per_epoch = cfg["task"]["num_train"] // cfg["train"]["batch_size"]  # full batches only, as seqicl.train
        out.append(Span(exp_dir.relative_to(root).as_posix(), folder.name, run["started"], end, status["status"], epochs,
                        epochs * per_epoch))
    return out


def busy_over_time(all_spans: list[Span], since: float, until: float, step: float) -> list[tuple[float, int]]:
    """(seconds after ``since``, trials running then) every ``step`` seconds."""
    points, t = [], since
    while t <= until + 1e-9:
        points.append((t - since, sum(1 for s in all_spans if s.start <= t < s.end)))
        t += step
    return points


def timeline(root: Path, since: float | None = None, until: float | None = None, slots: int | None = None,
             step: float = 10.0) -> str:
    all_spans = spans(root)
    if not all_spans:
        return f"{root}: no trial records"
    since = since if since is not None else min(s.start for s in all_spans)
    until = until if until is not None else max(s.end for s in all_spans)
    if slots is None:
        try:
            slots = json.loads((root / "sweep.json").read_text())["runs"][-1].get("max_concurrent")
        except (OSError, ValueError, KeyError, IndexError):
            slots = None
    lines = [f"window: {until - since:.0f} s; slots: {slots if slots else '?'}", "",
             "| experiment | first start (s) | trials started | ended | running at the end | epochs | steps | steps/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    names = sorted({s.experiment for s in all_spans}, key=lambda e: min(s.start for s in all_spans if s.experiment == e))
    for name in names:
        mine = [s for s in all_spans if s.experiment == name]
        steps = sum(s.steps for s in mine)
        lines.append(f"| {name} | {min(s.start for s in mine) - since:.1f} | {len(mine)} | "
                     f"{sum(s.status in FINAL for s in mine)} | {sum(s.status not in FINAL for s in mine)} | "
                     f"{sum(s.epochs for s in mine)} | {steps} | {steps / max(until - since, 1e-9):.0f} |")
    total = sum(s.steps for s in all_spans)
    early = sum(1 for name in names if min(s.start for s in all_spans if s.experiment == name) - since <= 60)
    lines += ["", f"experiments with a trial started in the first 60 s: {early} of {len(names)}",
              f"all experiments: {len(all_spans)} trials, {sum(s.epochs for s in all_spans)} epochs, "
              f"{total} steps, {total / max(until - since, 1e-9):.0f} steps/s over the window"]
    points = busy_over_time(all_spans, since, until, step)
    if points:
        mean = sum(n for _, n in points) / len(points)
        lines.append(f"trials running, mean over the window: {mean:.1f}"
                     + (f" of {slots} slots ({100 * mean / slots:.0f}% busy)" if slots else ""))
        lines += ["", f"trials running every {step:g} s: " + " ".join(str(n) for _, n in points)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--since", type=float, default=None)
    p.add_argument("--until", type=float, default=None)
    p.add_argument("--slots", type=int, default=None)
    p.add_argument("--step", type=float, default=10.0)
    args = p.parse_args(argv)
    root = Path(args.results)
    if not root.is_dir():
        print(f"error: {root}: no such results folder", file=sys.stderr)
        return 2
    print(timeline(root, args.since, args.until, args.slots, args.step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
