"""Sweep every model on one task with Ray Tune + Optuna + ASHA, then write the table.

    python sweeps/run.py --task induction                      # all models, default preset
    python sweeps/run.py --task dfa --models transformer,lstm --preset paper optim.beta2=0.95
    python sweeps/run.py --task induction --storage results/x --resume   # continue a sweep

Arguments of the form key=value are Hydra overrides of the run config (seqicl/conf).
Without a GPU the default preset is ``smoke`` (minutes on a CPU); with one it is ``paper``.
``--mps`` runs the trials that share a GPU under NVIDIA MPS (see sweeps/mps.py).
"""
from __future__ import annotations

import argparse
import copy
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqicl.config import ConfigError, canonical_task, load_yaml, options  # noqa: E402
from sweeps import mps  # noqa: E402
from sweeps.compose import compose  # noqa: E402
from sweeps.search_space import Param, load_space  # noqa: E402

PRESETS = ROOT / "sweeps" / "presets"
TASKS = ("associative_recall", "induction", "dfa")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, not a usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="associative_recall, induction (or induction_head), dfa")
    p.add_argument("--models", default=None, help="comma-separated; default: every registered model")
    p.add_argument("--preset", default=None, help="smoke (CPU minutes) or paper (the original budget)")
    p.add_argument("--num-samples", type=int, default=None, help="trials per model (preset's default)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once per model")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPU fraction per trial, e.g. 0.0625 packs 16 trials on a GPU (default: 1/16 with a GPU)")
    p.add_argument("--trials-per-gpu", type=int, default=None,
                   help="pack N trials on each GPU: sets --gpus-per-trial to 1/N")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--storage", default=None, help="results root (default: runs/<task>-<time>)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                   help="an existing Ray cluster (e.g. auto); default: start a local one")
    p.add_argument("--resume", action="store_true", help="continue the sweep stored in --storage")
    p.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler and of every trial")
    p.add_argument("--num-examples", default=None,
                   help="learning curve: comma-separated training sizes, one experiment per size and model")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a trial that raises")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds per experiment (model, or model and size); Tune stops its trials then")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")
    p.add_argument("--mps", action="store_true",
                   help="run the trials under NVIDIA MPS: start nvidia-cuda-mps-control before Ray and stop it "
                        "at the end (a daemon already running is used and left running); local cluster only")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    return p.parse_args(argv)


@dataclass
class Plan:
    task: str
    models: list[str]
    preset: str
    storage: Path
    num_samples: int
    max_concurrent: int
    gpus_per_trial: float
    cpus_per_trial: float
    grace_period: int
    reduction_factor: float
    # experiment name (model, or model-n<size> for learning curves) -> model, config, search space
    experiments: dict[str, tuple[str, dict, dict[str, Param]]] = field(default_factory=dict)


def has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


def make_plan(args) -> Plan:
    """Check every input and build the sweep plan. Writes nothing."""
    from seqicl.models import MIXERS

    task = canonical_task(args.task)
    if task not in TASKS:
        raise ConfigError(f"unknown task '{args.task}' (choose from {', '.join(TASKS)}, induction_head)")
    models = args.models.split(",") if args.models else sorted(MIXERS)
    for m in models:
        if m not in MIXERS or m not in options("model"):
            raise ConfigError(f"unknown model '{m}' (choose from {', '.join(sorted(MIXERS))})")
    gpu = has_gpu()
    preset_name = args.preset or ("paper" if gpu else "smoke")
    preset_path = PRESETS / f"{preset_name}.yaml"
    if not preset_path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise ConfigError(f"unknown preset '{preset_name}' (choose from {known})")
    preset = load_yaml(preset_path)
    num_samples = args.num_samples if args.num_samples is not None else preset["num_samples"]
    max_concurrent = args.max_concurrent if args.max_concurrent is not None else preset["max_concurrent"]
    if num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {num_samples}")
    if max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be at least 1, got {max_concurrent}")
    if args.trials_per_gpu is not None:
        if args.gpus_per_trial is not None:
            raise ConfigError("give --trials-per-gpu or --gpus-per-trial, not both")
        if args.trials_per_gpu < 1:
            raise ConfigError(f"--trials-per-gpu must be at least 1, got {args.trials_per_gpu}")
    explicit = 1 / args.trials_per_gpu if args.trials_per_gpu else args.gpus_per_trial
    if explicit is not None and not 0 < explicit <= 1:
        raise ConfigError(f"--gpus-per-trial must be a fraction in (0, 1], got {explicit}")
    gpus = explicit if explicit is not None else (1 / 16 if gpu else 0.0)
    if gpus > 0 and not gpu and not args.address:
        raise ConfigError("--gpus-per-trial asks for a GPU but this machine has none (use --address for a cluster)")
    if args.max_failures < 0:
        raise ConfigError(f"--max-failures must be 0 or more, got {args.max_failures}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise ConfigError(f"--time-budget must be positive seconds, got {args.time_budget}")
    if not args.cpus_per_trial > 0:
        raise ConfigError(f"--cpus-per-trial must be positive, got {args.cpus_per_trial}")
    storage = Path(args.storage or Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    plan = Plan(task, models, preset_name, storage, num_samples, max_concurrent, gpus, args.cpus_per_trial,
                preset["grace_period"], preset["reduction_factor"])
    sizes = parse_sizes(args.num_examples)
    for m in models:
        cfg = compose(task, m, list(preset.get("overrides") or []) + list(args.overrides))
        cfg["seed"] = args.seed
        cfg["train"]["progress"] = False
        if cfg["train"]["epochs"] < 1:
            raise ConfigError(f"train.epochs must be at least 1, got {cfg['train']['epochs']}")
        space = load_space(task, m, cfg, preset.get("space"))
        for size in sizes or [None]:
            c = copy.deepcopy(cfg)
            if size is not None:
                c["task"]["num_train"] = size
            plan.experiments[m if size is None else f"{m}-n{size}"] = (m, c, space)
    check_storage(plan, args.resume)
    if args.address:
        check_address(args.address)
    if args.mps:
        if args.address:  # the daemon would run here, not on the cluster's nodes
            raise ConfigError("--mps: works with the local cluster only; with --address, start MPS on "
                              "each node before `ray start`")
        why = mps.mps_available()
        if why:
            raise ConfigError(f"--mps: {why}")
    return plan


def check_address(address: str) -> None:
    """Fail fast on a cluster address nothing answers at (ray.init would wait for minutes)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be auto or host:port, got '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({e.strerror or type(e).__name__})") from None


def parse_sizes(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--num-examples takes comma-separated integers, got '{text}'") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--num-examples sizes must be positive, got '{text}'")
    return sorted(set(sizes), reverse=True)  # largest first: smaller sizes are cut from its cache


def check_storage(plan: Plan, resume: bool) -> None:
    existing = [name for name in plan.experiments if (plan.storage / plan.task / name).exists()]
    if resume and not (plan.storage / plan.task).is_dir():
        raise ConfigError(f"nothing to resume in {plan.storage / plan.task}")
    if existing and not resume:
        raise ConfigError(f"{plan.storage / plan.task} already holds results for {', '.join(existing)}: "
                          "pass --resume to continue, or choose another --storage")
    probe = plan.storage
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError(f"cannot write results under {plan.storage} ({probe} is not a writable folder)")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        plan = make_plan(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # MPS before Ray: a trial process joins MPS only if the daemon runs when it first initialises
    # CUDA. This driver already called torch.cuda.is_available() (make_plan), which initialises the
    # driver API (cuInit) but creates no context; it never runs CUDA work, so staying outside MPS is fine.
    if args.mps and not mps.start_mps():
        print(f"error: --mps: {mps.last_error}", file=sys.stderr)
        return 2
    try:
        return sweep(plan, args)
    finally:
        if args.mps:
            mps.stop_mps()


def sweep(plan: Plan, args) -> int:
    from analysis.report import write_report
    from seqicl.data import load_task
    from seqicl.data.cache import cache_dir
    from sweeps import tune_backend

    print(f"seqicl sweep: task={plan.task} models={','.join(plan.models)} preset={plan.preset} "
          f"samples={plan.num_samples} concurrent={plan.max_concurrent} gpu/trial={plan.gpus_per_trial:g} "
          f"{'mps=' + os.environ.get('CUDA_MPS_PIPE_DIRECTORY', '/tmp/nvidia-mps') + ' ' if args.mps else ''}"
          f"-> {plan.storage}\nwatch it: tensorboard --logdir {plan.storage}", flush=True)
    start = time.time()
    for _, cfg, _ in plan.experiments.values():  # generate the data once, before any trial asks for it
        cfg["data"]["cache_dir"] = str(cache_dir(cfg["data"]["cache_dir"]).resolve())  # trials run elsewhere
        load_task(cfg["task"], cfg["data"]["cache_dir"])
    try:
        tune_backend.init_ray(args.address, ROOT, dashboard=args.dashboard)
    except (ConnectionError, RuntimeError, ValueError) as e:
        print(f"error: cannot start or reach Ray at {args.address or 'a local cluster'}: "
              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    try:
        for name, (_, cfg, space) in plan.experiments.items():
            done = tune_backend.run_experiment(
                cfg=cfg, space=space, storage=plan.storage / plan.task, name=name,
                num_samples=plan.num_samples, max_concurrent=plan.max_concurrent,
                cpus_per_trial=plan.cpus_per_trial, gpus_per_trial=plan.gpus_per_trial, seed=args.seed,
                grace_period=plan.grace_period, reduction_factor=plan.reduction_factor,
                max_failures=args.max_failures, resume=args.resume, time_budget_s=args.time_budget)
            if not done:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with the same command plus --resume --storage {plan.storage}",
              file=sys.stderr)
        return 130
    finally:
        tune_backend.shutdown_ray()
    report = write_report(plan.storage)
    print(f"\n{report}\nsweep wall time: {time.time() - start:.0f} s; report files in {plan.storage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
