"""Export the best checkpoint of a (task, model) pair as a self-contained folder.

    python -m analysis.export <results dir> --task dfa --model transformer --out <dir>
    python -m analysis.export <results dir> --all [--out <dir>]     (default: <results dir>/exports)

The best trial is the one ``analysis.report`` picks (best validation metric, never an errored
trial). With several training sizes in the folder, every size is its own pair and ``--num-train``
picks one for a single export. The folder format is described in ``seqicl.export``.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from seqicl import __version__
from seqicl.config import canonical_task
from seqicl.export import ExportError, write_export
from seqicl.train.checkpoint import CheckpointError, read_checkpoint

from .results import Trial, best_trial, load_trials


def export_name(t: Trial, sizes: set) -> str:
    return f"{t.task}-{t.model}" + (f"-n{t.num_train}" if len(sizes) > 1 else "")


def export_trial(t: Trial, out: Path, root: Path) -> Path:
    ckpt = read_checkpoint(t.path / "best.pt")
    source = {"results": str(root.resolve()), "trial": t.trial_id, "trial_dir": str(t.path.resolve()),
              "checkpoint": str((t.path / "best.pt").resolve()), "seqicl_version": __version__}
    return write_export(out, ckpt, source)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.export", description=__doc__,
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
        trials = load_trials(root)
        groups: dict[tuple, list[Trial]] = defaultdict(list)
        for t in trials:
            groups[(t.task, t.model, t.num_train)].append(t)
        sizes = defaultdict(set)
        for task, model, n in groups:
            sizes[(task, model)].add(n)
        if args.all:
            out_root = Path(args.out) if args.out else root / "exports"
            for key in sorted(groups):
                best = best_trial(groups[key])
                if best is None:
                    print(f"skipped {key[0]}/{key[1]}: no usable trial", file=sys.stderr)
                    continue
                print(export_trial(best, out_root / export_name(best, sizes[key[:2]]), root))
            return 0
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
    except (ExportError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
