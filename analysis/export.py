"""Export the best checkpoint of a (task, model) pair as a self-contained folder.

    python -m analysis.export <results dir> --task dfa --model transformer --out <dir>
    python -m analysis.export <results dir> --all [--out <dir>]     (default: <results dir>/exports)

The best trial is the one ``analysis.report`` picks (best validation metric, never an errored
trial). With several training sizes in the folder, every size is its own pair and ``--num-train``
picks one for a single export. ``--all`` skips, one line each, a pair with no usable trial or an
unreadable best.pt, and exits with status 2 only when nothing was exported. The folder format is
described in ``seqicl.export``.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

from seqicl import __version__
from seqicl.cli import OneLineParser
from seqicl.config import canonical_task
from seqicl.export import ExportError, write_export
from seqicl.train.checkpoint import CheckpointError, read_checkpoint

from .results import Trial, best_trial, load_trials


def export_name(t: Trial, sizes: set) -> str:
    return f"{t.task}-{t.model}" + (f"-n{t.num_train}" if len(sizes) > 1 else "")


def export_trial(t: Trial, out: Path, root: Path) -> Path:
    """Export ``t``'s best.pt to ``out``. The provenance names the results folder only by its name
    and the trial folder and checkpoint relative to it, so the folder can be moved or copied."""
    try:
        ckpt = read_checkpoint(t.path / "best.pt")
    except CheckpointError as e:
        raise ExportError(f"trial {t.trial_id}: {e}") from None
    trial_dir = Path(os.path.relpath(t.path.resolve(), root.resolve())).as_posix()
    source = {"results": root.resolve().name, "trial": t.trial_id, "trial_dir": trial_dir,
              "checkpoint": f"{trial_dir}/best.pt", "seqicl_version": __version__}
    return write_export(out, ckpt, source)


def export_all(root: Path, groups: dict[tuple, list[Trial]], sizes: dict, out_root: Path) -> int:
    """Export the best trial of every pair; one line per pair skipped. Status 2 if none exported."""
    best = {key: best_trial(groups[key]) for key in sorted(groups)}
    if not any(best.values()):
        raise ExportError(f"{root}: no seqicl trials to export")
    exported = 0
    for (task, model, n), t in best.items():
        label = f"{task}/{model}" + (f" (num_train={n})" if len(sizes[(task, model)]) > 1 else "")
        if t is None:
            print(f"skipped {label}: no usable trial (every one errored or diverged)", file=sys.stderr)
            continue
        try:
            print(export_trial(t, out_root / export_name(t, sizes[(task, model)]), root))
            exported += 1
        except ExportError as e:
            print(f"skipped {label}: {e}", file=sys.stderr)
    if not exported:
        raise ExportError(f"{root}: nothing exported (every pair was skipped)")
    return 0


def main(argv: list[str]) -> int:
    p = OneLineParser(prog="python -m analysis.export", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--task")
    p.add_argument("--model")
    p.add_argument("--num-train", type=int, default=None)
    p.add_argument("--all", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    root = Path(args.results)
    try:
        if not root.is_dir():
            raise ExportError(f"{root}: no such results folder")
        groups: dict[tuple, list[Trial]] = defaultdict(list)
        for t in load_trials(root):
            groups[(t.task, t.model, t.num_train)].append(t)
        sizes = defaultdict(set)
        for task, model, n in groups:
            sizes[(task, model)].add(n)
        if args.all:
            return export_all(root, groups, sizes, Path(args.out) if args.out else root / "exports")
        if not (args.task and args.model and args.out):
            raise ExportError("give --task, --model and --out, or --all")
        task = canonical_task(args.task)
        keys = [k for k in groups if k[:2] == (task, args.model) and args.num_train in (None, k[2])]
        if not keys:
            raise ExportError(f"{root}: no trials of {args.model} on {task}"
                              + (f" with num_train={args.num_train}" if args.num_train else ""))
        if len(keys) > 1:
            raise ExportError(f"{task}/{args.model} was swept at several sizes "
                              f"({', '.join(str(k[2]) for k in sorted(keys))}): pick one with --num-train")
        best = best_trial(groups[keys[0]])
        if best is None:
            raise ExportError(f"{task}/{args.model}: every trial errored, nothing to export")
        print(export_trial(best, Path(args.out), root))
        return 0
    except (ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
