"""Re-run the best configuration of every (task, model) pair of a results folder with other
seeds, so the tables can show mean ± std beside the best single run.

    python sweeps/reseed.py <results dir> [--seeds 1,2,3] [--gpus-per-trial F] [--max-concurrent N]
                            [--address auto] [--resume] [--full-budget] [--time-budget S]

Every pair's chosen trial runs again with each seed, all of them side by side in one Tune
experiment per task, ``<task>/reseeds`` in the same folder (``reseeds-2``, ... when that exists):
the chosen trial's full config with ``role: reseed`` and ``seed`` set per run, no early stopping.
A (pair, seed) that already has a completed re-run of the same config is skipped, so the same
command after a cut-short run trains only what is missing; ``--resume`` continues the newest
``reseeds*`` experiment instead. Each re-run trains as many epochs
as the chosen trial did (ASHA may have stopped it before the sweep's budget), so the seeds repeat
the run the table reports; ``--full-budget`` trains the sweep's whole epoch budget instead.
``--time-budget`` ends the experiment after S seconds; re-runs cut short stay out of the mean.
The report is rewritten at the end.
"""
from __future__ import annotations

import argparse
import copy
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.results import best_trial, load_trials, rerun_of  # noqa: E402
from seqicl.config import ConfigError  # noqa: E402
from sweeps.run import check_address, has_gpu  # noqa: E402


EXPERIMENT = "reseeds"


def experiment_name(folder: Path, resume: bool) -> str:
    """The newest ``reseeds*`` experiment of a task folder to resume, or else the next free name."""
    taken = sorted((p.name for p in folder.glob(EXPERIMENT + "*") if p.is_dir()),
                   key=lambda n: int(n.rsplit("-", 1)[1]) if n.rsplit("-", 1)[-1].isdigit() else 1)
    if resume and taken:
        return taken[-1]
    n = 1
    while (folder / (EXPERIMENT if n == 1 else f"{EXPERIMENT}-{n}")).exists():
        n += 1
    return EXPERIMENT if n == 1 else f"{EXPERIMENT}-{n}"


def plan(root: Path, seeds: list[int], full_budget: bool = False) -> dict[Path, dict[str, dict]]:
    """Task folder -> {"<sweep experiment>@<seed>": config to train}: the best trial of every
    sweep experiment, once per seed that has no completed re-run of that config yet."""
    groups, done = defaultdict(list), defaultdict(list)
    for t in load_trials(root):
        if t.role == "sweep":
            groups[(t.task, t.path.parent.name)].append(t)
        elif t.status in ("finished", "diverged"):
            done[t.path.parent.parent].append(t)
    if not groups:
        raise ConfigError(f"{root}: no sweep trials to re-run")
    jobs: dict[Path, dict[str, dict]] = defaultdict(dict)
    for (task, experiment), trials in sorted(groups.items()):
        best = best_trial(trials)
        if best is None:
            continue
        if best.seed in seeds:
            raise ConfigError(f"seed {best.seed} is the chosen trial's own seed: pick other --seeds")
        folder = best.path.parent.parent
        cfg = copy.deepcopy(best.config)
        cfg["role"] = "reseed"
        if not full_budget:
            cfg["train"]["epochs"] = max(1, best.epochs_run)
        for seed in seeds:
            if not any(r.seed == seed and rerun_of(r, best) and r.epochs_budget == cfg["train"]["epochs"]
                       for r in done[folder]):
                jobs[folder][f"{experiment}@{seed}"] = {**copy.deepcopy(cfg), "seed": seed}
    return {folder: runs for folder, runs in jobs.items() if runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--gpus-per-trial", type=float, default=None)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--max-concurrent", type=int, default=16)
    p.add_argument("--address", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--full-budget", action="store_true", help="train the sweep's whole epoch budget per re-run")
    p.add_argument("--time-budget", type=float, default=None, help="end the re-runs after this many seconds")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(args.results).resolve()
    try:
        if not root.is_dir():
            raise ConfigError(f"{root}: no such results folder")
        try:
            seeds = sorted({int(s) for s in args.seeds.split(",") if s.strip()})
        except ValueError:
            raise ConfigError(f"--seeds takes comma-separated integers, got '{args.seeds}'") from None
        if not seeds:
            raise ConfigError("--seeds is empty")
        gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1 / 16 if has_gpu() else 0.0)
        if not 0 <= gpus <= 1 or args.max_concurrent < 1:
            raise ConfigError("--gpus-per-trial must be in [0, 1] and --max-concurrent at least 1")
        if args.time_budget is not None and not args.time_budget > 0:
            raise ConfigError(f"--time-budget must be positive seconds, got {args.time_budget}")
        if args.address:
            check_address(args.address)
        jobs = plan(root, seeds, args.full_budget)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not jobs:
        print(f"nothing to re-run: every chosen configuration has completed runs with seeds {args.seeds}")
        return 0
    from analysis.report import write_report
    from sweeps import tune_backend
    tune_backend.init_ray(args.address, ROOT)
    try:
        for folder, configs in jobs.items():
            done = tune_backend.run_reseeds(
                jobs=configs, storage=folder, name=experiment_name(folder, args.resume), max_concurrent=args.max_concurrent,
                cpus_per_trial=args.cpus_per_trial, gpus_per_trial=gpus, resume=args.resume,
                time_budget_s=args.time_budget)
            if not done:
                print("interrupted: continue with the same command plus --resume", file=sys.stderr)
                return 130
    finally:
        tune_backend.shutdown_ray()
    print(write_report(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
