"""Where one trial's wall time goes, from a sweep's records: per experiment, the mean over its
ended trials of the recorded timings (``seqicl.train`` writes them into every epoch row).

    python bench/trial_breakdown.py <results folder>

- wall:   the record's start (``run.json`` "started") to its last word (``status.json`` "updated");
- train:  ``time_total_s`` minus ``eval_s``: the training steps;
- eval:   ``eval_s``, every evaluation of validation and test;
- save:   ``save_s``, checkpoints and training states;
- setup:  ``setup_s``, from building the run to the captured step (partly before "started"), and
          within it ``build_s`` (task data, model, optimiser) and ``capture_s`` (warm-up and capture);
- other:  wall - train - eval - save: waiting on Tune's reports, record and TensorBoard writes,
          the capture after "started".
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqicl.train.record import FINAL  # noqa: E402
from sweep_timeline import trial_records  # noqa: E402  (beside this file)


def breakdown(root: Path) -> str:
    rows = {}
    for exp_dir, _, run, status, epochs in trial_records(root):
        if status["status"] not in FINAL or not epochs:
            continue
        last = epochs[-1]
        wall = status["updated"] - run["started"]
        train = last["time_total_s"] - last.get("eval_s", 0.0)
        parts = (wall, train, *(last.get(k, 0.0) for k in ("eval_s", "save_s", "setup_s", "build_s", "capture_s")),
                 status["epochs"])
        rows.setdefault(exp_dir.name, []).append(parts)
    lines = ["| experiment | trials | epochs/trial | wall s | train | eval | save | other | setup s | build s | capture s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, parts in rows.items():
        n = len(parts)
        wall, train, ev, save, setup, build, capture, epochs = (sum(p[i] for p in parts) / n for i in range(8))
        other = wall - train - ev - save
        pct = lambda x: f"{100 * x / wall:.0f}%" if wall > 0 else "?"  # noqa: E731
        lines.append(f"| {name} | {n} | {epochs:.0f} | {wall:.1f} | {pct(train)} | {pct(ev)} | {pct(save)} | "
                     f"{pct(other)} | {setup:.1f} | {build:.1f} | {capture:.1f} |")
    return "\n".join(lines) if rows else f"{root}: no ended trials"


def slot_shares(last_rows: list[dict], window_s: float, slots: int) -> str:
    """Where the sweep's slot-seconds (``slots`` x ``window_s``) went, from each trial's last epoch
    row (its attempt's timings): training steps, evaluation, writes, setup, and the rest (no trial
    in the slot: Ray's start, the gaps between trials, the tail; and report round trips)."""
    avail = slots * window_s
    train = sum(r["time_total_s"] - r.get("eval_s", 0.0) for r in last_rows)
    parts = {"training steps": train, **{name: sum(r.get(k, 0.0) for r in last_rows)
                                         for name, k in (("evaluation", "eval_s"), ("writes", "save_s"),
                                                         ("setup", "setup_s"))}}
    parts["the rest"] = avail - sum(parts.values())
    return f"slot-seconds: {slots} x {window_s:.0f} s; " + ", ".join(
        f"{name} {100 * v / avail:.1f}%" for name, v in parts.items())


def trials_file(path: Path) -> list[dict]:
    """Every trial of a committed ``trials.jsonl.gz`` (``analysis.report``'s format)."""
    with gzip.open(path, "rt") as f:
        return [json.loads(x) for x in f][1:]  # the first line names the format


def last_rows_of_trials_file(path: Path) -> list[dict]:
    """The last epoch row of every trial in a committed ``trials.jsonl.gz``."""
    return [t["epochs"][-1] for t in trials_file(path) if t.get("epochs")]


def wall_left(trials: list[dict], samples: int, slots: int) -> float:
    """A rough estimate of an interrupted sweep's remaining wall time: per experiment, the trials
    not yet ended times the mean setup + training time of its ended ones, over ``slots`` slots
    kept busy. Optimistic where later trials run longer (a searcher that has found good regions)
    or where the tail leaves slots idle."""
    left = 0.0
    for name in sorted({t["experiment"] for t in trials}):
        ended = [t["epochs"][-1] for t in trials if t["experiment"] == name and t.get("epochs")
                 and t["status"] in ("finished", "stopped", "diverged")]
        if ended:
            left += (samples - len(ended)) * sum(r["time_total_s"] + r.get("setup_s", 0.0) for r in ended) / len(ended)
    return left / slots


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "--slots-of":   # --slots-of trials.jsonl.gz WINDOW_S SLOTS
        print(slot_shares(last_rows_of_trials_file(Path(args[1])), float(args[2]), int(args[3])))
    elif len(args) == 4 and args[0] == "--left-of":  # --left-of trials.jsonl.gz SAMPLES SLOTS
        print(f"about {wall_left(trials_file(Path(args[1])), int(args[2]), int(args[3])):.0f} s left")
    elif len(args) == 1 and Path(args[0]).is_dir():
        print(breakdown(Path(args[0])))
    else:
        print("usage: python bench/trial_breakdown.py <results folder>\n"
              "       python bench/trial_breakdown.py --slots-of <trials.jsonl.gz> <window s> <slots>\n"
              "       python bench/trial_breakdown.py --left-of <trials.jsonl.gz> <samples> <slots>", file=sys.stderr)
        sys.exit(2)
