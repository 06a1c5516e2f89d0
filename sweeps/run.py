"""Sweep the models on one task with Ray Tune + Optuna + ASHA, then write the table.

    python sweeps/run.py --task induction                      # the original table's seven, default preset
    python sweeps/run.py --task dfa --models transformer,lstm --preset paper optim.beta2=0.95
    python sweeps/run.py --resume --storage runs/induction-...  # continue a sweep where it stopped

Arguments of the form key=value are Hydra overrides of the run config (seqicl/conf); one that
names a searched key fixes that key. Without a GPU the default preset is ``cpu`` (about 5 minutes on
a CPU); with one it is ``paper``. ``--resume`` takes the stored settings of the sweep; settings
given again must match them, except budget, concurrency, packing and more samples.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqicl.cli import OneLineParser  # noqa: E402
from seqicl.config import ConfigError, canonical_task, check_value, get_dotted, load_yaml, options, set_dotted, validate  # noqa: E402
from sweeps.asha import Rungs  # noqa: E402
from sweeps.compose import compose  # noqa: E402
from sweeps.locks import locked  # noqa: E402
from sweeps.options import Cluster, add_cluster_args, check_writable, has_gpu, resolve_cluster  # noqa: E402
from sweeps.search_space import Param, load_space  # noqa: E402
from sweeps.sweep_state import check_resume, read_sweep, write_sweep  # noqa: E402

PRESETS = ROOT / "sweeps" / "presets"
TASKS = ("associative_recall", "induction", "dfa")
LOCK = ".lock"
# what --resume takes from sweep.json when the command line leaves it out
STORED_ARGS = ("task", "models", "preset", "num_examples", "seed", "seeds", "num_samples", "grace_period",
               "overrides")


def parse_args(argv):
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=None, help="associative_recall, induction (or induction_head), dfa")
    p.add_argument("--models", default=None, help="comma-separated; default: the preset's list, else the original "
                   "table's seven (the paper's other five run when named)")
    p.add_argument("--preset", default=None, help=", ".join(sorted(f.stem for f in PRESETS.glob("*.yaml"))) +
                   ": sweeps/presets/*.yaml (default: paper with a GPU, cpu without)")
    p.add_argument("--num-samples", type=int, default=None, help="trials per model (preset's default)")
    p.add_argument("--storage", default=None, help="results folder (default: runs/<task>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the sweep stored in --storage")
    p.add_argument("--grace-period", type=int, default=None,
                   help="epochs before ASHA's first rung (preset's default); must come after the warm-up")
    p.add_argument("--seed", type=int, default=None, help="seed of the Optuna sampler and of every trial (0)")
    p.add_argument("--seeds", default=None,
                   help="no search: one configuration per model (every searched key fixed by the preset or "
                        "overrides), trained once per seed, e.g. 0,1,2,3,4 (default: the preset's seeds, if any)")
    p.add_argument("--num-examples", default=None,
                   help="learning curve: comma-separated training sizes, one experiment per size and model "
                        "(default: the preset's, if any)")
    add_cluster_args(p)
    p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    return p.parse_intermixed_args(argv)  # overrides may come before or after the flags


@dataclass
class Experiment:
    name: str              # model, or model-n<size> for learning curves
    model: str
    cfg: dict              # the base config of every trial (fixed keys applied)
    space: dict[str, Param]  # the searched keys
    start: dict = field(default_factory=dict)  # values of searched keys for the first trial (preset's start)

    def defining(self) -> dict:
        return {"config": self.cfg, "space": {k: [p.kind, list(p.args)] for k, p in sorted(self.space.items())},
                **({"start": self.start} if self.start else {})}


@dataclass
class Plan:
    task: str
    models: list[str]
    preset: str
    storage: Path
    num_samples: int
    seed: int
    grace_period: int
    reduction_factor: float
    cluster: Cluster
    args: dict                                  # the sweep's own arguments, as stored
    seeds: list[int] = field(default_factory=list)   # no search: these seeds of one configuration
    fixed: list[str] = field(default_factory=list)   # searched keys an override fixed
    experiments: dict[str, Experiment] = field(default_factory=dict)

    def defining(self) -> dict:
        return {"task": self.task, "preset": self.preset, "seed": self.seed, "grace_period": self.grace_period,
                "reduction_factor": self.reduction_factor, **({"seeds": self.seeds} if self.seeds else {}),
                "experiments": {name: e.defining() for name, e in self.experiments.items()}}


def fill_from_stored(args) -> dict | None:
    """On resume, the stored sweep's arguments stand in for the ones the command leaves out."""
    if not args.resume:
        return None
    if not args.storage:
        raise ConfigError("--resume needs --storage <results folder>")
    storage = Path(args.storage)
    stored = read_sweep(storage)
    if stored is None:
        if (storage / "tuner.pkl").exists() or any(storage.glob("*/*/experiment_state-*.json")):
            raise ConfigError(f"{storage} was written by an older seqicl in Ray's layout: it can be reported "
                              "(analysis.report) but not resumed")
        raise ConfigError(f"nothing to resume in {storage} (no sweep.json)")
    given = stored["runs"][-1].get("args", {}) if stored.get("runs") else {}
    for key in STORED_ARGS:
        if getattr(args, key) in (None, []) and key in given:
            setattr(args, key, given[key])
    return stored


def make_plan(args) -> tuple[Plan, dict | None]:
    """Check every input and build the sweep plan. Writes nothing."""
    from seqicl.models import MIXERS, default_models

    stored = fill_from_stored(args)
    if not args.task:
        raise ConfigError("--task is required (associative_recall, induction, dfa)")
    task = canonical_task(args.task)
    if task not in TASKS:
        raise ConfigError(f"unknown task '{args.task}' (choose from {', '.join(TASKS)}, induction_head)")
    from analysis.names import model_order
    # the original table's order: with fewer slots than models, the experiments start in this order
    gpu = has_gpu(args)
    # the default: paper with a GPU, cpu (about 5 minutes on a laptop) without; $SEQICL_PRESET overrides
    preset_name = args.preset or os.environ.get("SEQICL_PRESET") or ("paper" if gpu else "cpu")
    preset = load_preset(preset_name)
    # every registered model, or the preset's own list (the original table's seven for `original`)
    models = args.models.split(",") if isinstance(args.models, str) else list(
        args.models or preset.get("default_models") or model_order(default_models()))
    for m in models:
        if m not in MIXERS or m not in options("model"):
            raise ConfigError(f"unknown model '{m}' (choose from {', '.join(sorted(MIXERS))})")
    if "tasks" in preset and task not in (preset["tasks"] or {}):
        raise ConfigError(f"preset '{preset_name}' is defined for {', '.join(preset['tasks'] or {})} only, not {task}")
    for_task = (preset.get("tasks") or {}).get(task) or {}  # the preset's entries for this task
    seeds = parse_seed_list(args.seeds) if args.seeds else list(preset.get("seeds") or [])
    num_samples = args.num_samples if args.num_samples is not None else len(seeds) or preset["num_samples"]
    if num_samples < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {num_samples}")
    if seeds and num_samples != len(seeds):
        raise ConfigError(f"--seeds gives {len(seeds)} runs per model: leave out --num-samples ({num_samples})")
    cluster = resolve_cluster(args, gpu, preset["max_concurrent"])
    if cluster.time_budget is None and preset.get("time_budget"):
        cluster.time_budget = float(preset["time_budget"])
    storage = Path(args.storage or Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    seed = args.seed if args.seed is not None else 0
    sizes = parse_sizes(args.num_examples or preset.get("num_examples"))
    grace = args.grace_period if args.grace_period is not None else preset["grace_period"]
    if grace < 1:
        raise ConfigError(f"--grace-period must be at least 1, got {grace}")
    saved_args = {"task": task, "models": models, "preset": preset_name, "num_examples": args.num_examples,
                  "seed": seed, "seeds": args.seeds, "num_samples": num_samples, "grace_period": args.grace_period,
                  "overrides": list(args.overrides)}
    plan = Plan(task, models, preset_name, storage, num_samples, seed, grace,
                preset["reduction_factor"], cluster, saved_args, seeds)
    overrides = list(preset.get("overrides") or []) + list(for_task.get("overrides") or []) + list(args.overrides)
    overridden = {o.lstrip("+").split("=", 1)[0] for o in overrides}
    for m in models:
        cfg = compose(task, m, overrides)
        cfg["seed"] = seed
        cfg["train"]["progress"] = False
        # the preset's space narrows every model's, then its per-model entries that model's
        space = load_space(task, m, cfg, {**(preset.get("space") or {}), **(for_task.get("space") or {}),
                                          **((preset.get("models") or {}).get(m) or {})})
        for key in sorted(set(space) & overridden):  # the override wins: the key is no longer searched
            if space.pop(key).kind != "fixed" and key not in plan.fixed:
                plan.fixed.append(key)
        for key, p in list(space.items()):
            for value in p.args:  # every value a trial can get must be one the config accepts
                check_value(key, value)
            if p.kind == "fixed":
                set_dotted(cfg, key, space.pop(key).args[0])
        start = start_values(preset, m, space, plan.seeds, overridden)
        for size in sizes or [None]:
            c = copy.deepcopy(cfg)
            if size is not None:
                c["task"]["num_train"] = size
                validate(c)
            name = m if size is None else f"{m}-n{size}"
            plan.experiments[name] = Experiment(name, m, c, space, start)
            check_first_rung(plan, plan.experiments[name])
            if seeds and space:
                raise ConfigError(f"--seeds trains one configuration, but {name} still searches "
                                  f"{', '.join(sorted(space))}: fix them with key=value overrides or a preset")
    check_storage(plan, args.resume)
    if stored is not None:
        check_resume(stored, plan.defining())
        started = max((trials_started(plan, e) for e in plan.experiments), default=0)
        if num_samples < started:
            raise ConfigError(f"--num-samples {num_samples} is below the {started} trials this sweep already started")
    return plan, stored


def start_values(preset: dict, model: str, space: dict[str, Param], seeds: list[int], overridden: set) -> dict:
    """The preset's ``start`` entries for ``model``: values the first trial of its study takes
    (RegBench: the paper's best configuration). Keys an override fixed are left out; any other
    key must be searched and the value one its distribution can give."""
    given = (preset.get("start") or {}).get(model) or {}
    if seeds:
        return {}
    out = {}
    for key, value in given.items():
        if key in overridden:
            continue  # the override's value it is
        p = space.get(key)
        if p is None:
            raise ConfigError(f"preset start for {model}: {key} is not searched")
        ok = value in p.args if p.kind == "choice" else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and p.args[0] <= value <= p.args[1])
        if not ok:
            raise ConfigError(f"preset start for {model}: {key}={value!r} is outside its search space ({p.describe()})")
        out[key] = value
    return out


def load_preset(name: str, seen: tuple = ()) -> dict:
    """sweeps/presets/<name>.yaml, laid over the preset its ``base`` names: ``overrides`` add to the
    base's, mappings (``space``, ``tasks``, ``models``) merge key by key, anything else replaces."""
    path = PRESETS / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
        raise ConfigError(f"unknown preset '{name}' (choose from {known})")
    if name in seen:
        raise ConfigError(f"preset '{name}' is its own base ({' -> '.join((*seen, name))})")
    preset = load_yaml(path)
    if not isinstance(preset, dict):
        raise ConfigError(f"{path}: expected a mapping")
    if "base" not in preset:
        return preset
    return merge_presets(load_preset(preset.pop("base"), (*seen, name)), preset)


def merge_presets(base: dict, child: dict) -> dict:
    out = dict(base)
    for key, value in child.items():
        if key == "overrides":
            out[key] = list(base.get(key) or []) + list(value or [])
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = merge_presets(base[key], value)
        else:
            out[key] = value
    return out


def largest(e: Experiment, key: str) -> float:
    """The largest value ``key`` takes in the experiment's trials (fixed, or searched)."""
    p = e.space.get(key)
    if p is None:
        return get_dotted(e.cfg, key)
    return max(p.args)


def check_first_rung(plan: Plan, e: Experiment) -> None:
    """ASHA compares trials at its first rung: one inside the learning-rate warm-up ranks trials
    by how far their warm-up got (a low rate is still near zero there), not by what they learn."""
    epochs = e.cfg["train"]["epochs"]
    first = Rungs(plan.grace_period, plan.reduction_factor, epochs).milestones[0]
    warmup = largest(e, "optim.warmup_frac") * largest(e, "train.epochs")
    if first < epochs and first <= warmup:
        raise ConfigError(f"ASHA's first rung (epoch {first}) falls inside the learning-rate warm-up of {e.name} "
                          f"({warmup:g} of {epochs} epochs): pass --grace-period above {warmup:g} "
                          "or lower optim.warmup_frac")


def trials_started(plan: Plan, name: str) -> int:
    folder = plan.storage / plan.task / name / "trials"
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def parse_seed_list(text) -> list[int]:
    try:
        seeds = sorted({int(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got '{text}'") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds must be integers >= 0, got '{text}'")
    return seeds


def parse_sizes(text) -> list[int]:
    """``1000,5000`` (the flag) or ``[1000, 5000]`` (a preset's list) -> sizes, largest first."""
    if not text:
        return []
    if isinstance(text, list):
        text = ",".join(map(str, text))
    try:
        sizes = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--num-examples takes comma-separated integers, got '{text}'") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--num-examples sizes must be positive, got '{text}'")
    return sorted(set(sizes), reverse=True)  # largest first: smaller sizes are cut from its cache


def check_storage(plan: Plan, resume: bool) -> None:
    if not resume:
        taken = [n for n in plan.experiments if (plan.storage / plan.task / n).exists()]
        if taken or (plan.storage / "sweep.json").exists():
            raise ConfigError(f"{plan.storage} already holds a sweep{' (' + ', '.join(taken) + ')' if taken else ''}: "
                              "pass --resume to continue it, or choose another --storage")
    check_writable(plan.storage)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        plan, stored = make_plan(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    created = not plan.storage.exists()
    try:
        plan.storage.mkdir(parents=True, exist_ok=True)
        with locked(plan.storage / LOCK, what=f"results folder {plan.storage}"):
            if stored is None and (plan.storage / "sweep.json").exists():  # another driver got here first
                raise ConfigError(f"{plan.storage} already holds a sweep: pass --resume to continue it")
            return sweep(plan, stored)
    except ConfigError as e:  # e.g. MPS or Ray would not start: a folder made for nothing goes again
        if created and {p.name for p in plan.storage.iterdir()} <= {LOCK}:
            shutil.rmtree(plan.storage, ignore_errors=True)
        print(f"error: {e}", file=sys.stderr)
        return 2


def sweep(plan: Plan, stored: dict | None) -> int:
    from analysis.report import write_report
    from seqicl.data import load_task
    from sweeps import tune_backend

    fixed = f" fixed by override: {', '.join(plan.fixed)}" if plan.fixed else ""
    start = time.time()
    for e in plan.experiments.values():  # generate the data once, before any trial asks for it
        load_task(e.cfg["task"], e.cfg["data"]["cache_dir"])
    data_s = time.time() - start

    def prepare(c: Cluster) -> list:  # the cluster is up: its slots are known
        up_s = time.time() - start  # where the start goes: data (generated or read), then MPS and Ray
        print(f"seqicl sweep: up in {up_s:.1f} s (task data {data_s:.1f} s, MPS and Ray {up_s - data_s:.1f} s)\n"
              f"seqicl sweep: task={plan.task} models={','.join(plan.models)} preset={plan.preset} "
              f"samples={plan.num_samples} concurrent={c.max_concurrent} gpu/trial={c.gpus_per_trial:g}"
              f"{' mps' if c.mps != 'off' else ''}{fixed} -> {plan.storage}\n"
              f"watch it: tensorboard --logdir {plan.storage}", flush=True)
        write_sweep(plan.storage, plan.defining(), {"args": plan.args, **c.settings()}, plan.storage.name, stored)
        return lanes_of(plan, tune_backend.Lane)

    try:
        ended = tune_backend.run_experiments(prepare, plan.cluster, storage=plan.storage, name=plan.task, root=ROOT)
        if ended == "interrupted":
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with  python sweeps/run.py --resume --storage {plan.storage}", file=sys.stderr)
        return 130
    report = write_report(plan.storage)
    print(f"\n{report}\n{ending(plan, time.time() - start, ended)}")
    return 0


def ending(plan: Plan, wall_s: float, ended: str = "complete") -> str:
    """What a finished sweep tells its user last: where things are, and what to run next. A sweep
    that its time budget ended says so first: its tables are partial."""
    here = f"python sweeps/run.py --task {plan.task}"
    nxt = [f"python -m analysis.export {plan.storage} --all        # the best checkpoint of every pair"]
    if ended == "budget":
        nxt.insert(0, f"python sweeps/run.py --resume --storage {plan.storage}   # the time budget ran out "
                      "before every trial ended: these tables are partial")
    if plan.task == "dfa":
        nxt.append(f"python -m analysis.generate {plan.storage}/exports/<export> --num-dfas 50   # checked against each DFA")
    if plan.preset in ("cpu", "smoke"):  # a laptop's look: the GPU budget comes next
        nxt.append(f"{here} --preset regbench   # on a GPU: the learning curve 1k-40k, every model"
                   if plan.task == "dfa" else
                   f"{here} --preset paper   # on a GPU: 64 trials per model, 50 epochs each at most")
    return (f"sweep wall time: {wall_s:.0f} s (preset {plan.preset}); tables in {plan.storage}/table.md "
            f"(.csv, .json), every trial in trials.csv\nnext:\n" + "\n".join(f"  {line}" for line in nxt))


def lanes_of(plan: Plan, Lane) -> list:
    """One lane per experiment of the plan: its trial source (the Optuna study, or with seeds the
    one configuration once per seed, trials seed<k>) and its rungs."""
    from sweeps.study import FixedTrials, OptunaTrials
    lanes = []
    for e in plan.experiments.values():
        exp_dir = plan.storage / plan.task / e.name
        exp_dir.mkdir(parents=True, exist_ok=True)
        rungs = rungs_of(plan, e, exp_dir)  # first: it may end trials the source would resume
        if plan.seeds:
            source = FixedTrials(exp_dir, {f"seed{k}": {**copy.deepcopy(e.cfg), "seed": k} for k in plan.seeds})
        else:
            source = OptunaTrials(exp_dir, e.cfg, e.space, plan.seed, plan.num_samples, e.start)
        lanes.append(Lane(f"{plan.task}/{e.name}", exp_dir, source, rungs, plan.num_samples))
    return lanes


def rungs_of(plan: Plan, e: Experiment, exp_dir: Path) -> Rungs:
    """ASHA's rungs for the experiment, with every trial's past epochs recorded in trial order.
    A trial its killed driver had left running past a rung it falls below is recorded as
    stopped there, as the uninterrupted sweep would have stopped it."""
    from seqicl.train.record import RecordError, RunRecord
    rungs = Rungs(plan.grace_period, plan.reduction_factor, e.cfg["train"]["epochs"])
    folder = exp_dir / "trials"
    for trial in sorted(folder.iterdir()) if folder.is_dir() else []:
        record = RunRecord(trial)
        rows = record.kept_epochs()
        stop = rungs.replay(trial.name, rows)
        try:
            status = record.status()
        except RecordError:
            continue
        running = status["status"] == "running"
        if status["status"] == "finished" and rows and (status.get("epochs") or 0) < e.cfg["train"]["epochs"]:
            rungs.finish(trial.name, rows[-1]["best_val"])  # ended at its best possible score
        if stop is not None and running:
            record.truncate(stop)
            record.set_status("stopped", f"early stopping: below the rung cutoff at epoch {stop}")
            (trial / "state.pt").unlink(missing_ok=True)
    return rungs


if __name__ == "__main__":
    sys.exit(main())
