"""Re-run the best configuration of every (task, model) pair of a results folder with other
seeds, so the tables can show mean ± std beside the best single run.

    python sweeps/reseed.py <results dir> [--seeds 1,2,3] [the packing and cluster flags of
                            run.py: --max-concurrent, --trials-per-gpu, --mps, --time-budget, ...]

Every pair's chosen trial runs again with each seed, all side by side in one experiment per
task, ``<task>/reseeds``: the chosen trial's full config with ``role: reseed`` and ``seed`` set,
no early stopping. A (pair, seed) that already has a completed re-run of that config is skipped
and one that was cut short continues from its training state, so running the same command
again trains only what is missing. Each re-run trains the chosen configuration's whole schedule
(``train.epochs`` is part of the configuration: ASHA may have stopped the chosen trial early, but
its learning rate was on the way to its full-length cosine; a re-run cut to that epoch would
anneal to zero there, another recipe). ``--epochs N`` trains the chosen configuration on a
schedule of N epochs instead (cosine and warm-up stretched to N): a longer recipe, reported beside
the chosen one and never averaged with it; the chosen trial's own seed may run then too.
``--time-budget`` ends the re-runs after S seconds; those cut short are listed apart and stay out
of the mean. The report is rewritten at the end.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.results import best_trial, load_trials, rerun_of  # noqa: E402
from seqicl.cli import OneLineParser  # noqa: E402
from seqicl.config import ConfigError  # noqa: E402
from sweeps.locks import locked  # noqa: E402
from sweeps.options import add_cluster_args, has_gpu, resolve_cluster  # noqa: E402
from sweeps.run import LOCK  # noqa: E402

EXPERIMENT = "reseeds"


def plan(root: Path, seeds: list[int], state_every: int | None = None,
         epochs: int | None = None) -> dict[Path, dict[str, dict]]:
    """Task folder -> {"<experiment>-seed<k>-e<epochs>": config to train}: the best trial of
    every sweep experiment, once per seed that has no completed re-run of that config yet.
    ``state_every`` (given) replaces the chosen trial's: how often a re-run saves its state;
    ``epochs`` (given) its schedule's length."""
    groups, done, reruns = defaultdict(list), defaultdict(list), {}
    for t in load_trials(root):
        if t.role == "sweep":
            groups[t.experiment].append(t)
        else:
            reruns[Path(t.experiment).parent, t.path.name] = t
            if t.status in ("finished", "diverged"):
                done[Path(t.experiment).parent].append(t)
    if not groups:
        raise ConfigError(f"{root}: no sweep trials to re-run")
    jobs: dict[Path, dict[str, dict]] = defaultdict(dict)
    for experiment, trials in sorted(groups.items()):
        best = best_trial(trials)
        if best is None or not best.config:
            continue
        folder = Path(experiment).parent
        cfg = copy.deepcopy(best.config)
        if epochs is not None:
            cfg["train"]["epochs"] = epochs
        if best.seed in seeds and cfg["train"]["epochs"] == best.config["train"]["epochs"]:
            raise ConfigError(f"seed {best.seed} is the chosen trial's own seed: pick other --seeds")
        cfg["role"] = "reseed"
        if state_every is not None:
            cfg["train"]["state_every"] = state_every
        for seed in seeds:
            if not any(r.seed == seed and rerun_of(r, best) and r.epochs_budget == cfg["train"]["epochs"]
                       for r in done[folder]):
                name = free_name(f"{Path(experiment).name}-seed{seed}-e{cfg['train']['epochs']}",
                                 {n: t for (f, n), t in reruns.items() if f == folder}, best)
                jobs[root / folder][name] = {**copy.deepcopy(cfg), "seed": seed}
    return {folder: runs for folder, runs in jobs.items() if runs}


def free_name(name: str, reruns: dict, best) -> str:
    """``name``, or ``name-2``, ``name-3``, ...: the first that is not in ``reruns`` (trial name ->
    Trial, the task's re-runs) or names a re-run of ``best``'s configuration (one cut short
    continues there). A folder of another configuration's re-run (the chosen trial changed since)
    is left as it is: training there would be refused, and its record is a result."""
    candidate, k = name, 1
    while candidate in reruns and not rerun_of(reruns[candidate], best):
        k += 1
        candidate = f"{name}-{k}"
    return candidate


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got '{text}'") from None
    if not seeds:
        raise ConfigError("--seeds is empty")
    return seeds


def main(argv=None) -> int:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--state-every", type=int, default=None, metavar="N",
                   help="save each re-run's training state every N epochs (default: as the chosen trial did); "
                        "1 where a time budget may cut the re-runs, so that a resume loses no epoch")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="train the chosen configurations on a schedule of N epochs instead of their own "
                        "(reported apart from the chosen schedule's seeds, never averaged with them)")
    add_cluster_args(p)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(args.results).resolve()
    try:
        if not root.is_dir():
            raise ConfigError(f"{root}: no such results folder")
        seeds = parse_seeds(args.seeds)
        cluster = resolve_cluster(args, has_gpu(args), default_concurrent=os.cpu_count() or 1)
        with locked(root / LOCK, what=f"results folder {root}"):
            if args.state_every is not None and args.state_every < 1:
                raise ConfigError(f"--state-every must be an integer >= 1, got {args.state_every}")
            if args.epochs is not None and args.epochs < 1:
                raise ConfigError(f"--epochs must be an integer >= 1, got {args.epochs}")
            jobs = plan(root, seeds, args.state_every, args.epochs)
            if not jobs:
                print(f"nothing to re-run: every chosen configuration has completed runs with seeds {args.seeds}")
                return 0
            return run_jobs(root, jobs, cluster)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run_jobs(root: Path, jobs: dict[Path, dict[str, dict]], cluster) -> int:
    from analysis.report import write_report
    from sweeps import tune_backend
    from sweeps.study import FixedTrials

    def prepare(_cluster) -> list:
        return [tune_backend.Lane(f"{folder.name}/{EXPERIMENT}", folder / EXPERIMENT,
                                  FixedTrials(folder / EXPERIMENT, configs), None, len(configs))
                for folder, configs in jobs.items()]

    try:
        if tune_backend.run_experiments(prepare, cluster, storage=root, name=EXPERIMENT, root=ROOT) == "interrupted":
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("interrupted: run the same command again to continue", file=sys.stderr)
        return 130
    print(write_report(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
