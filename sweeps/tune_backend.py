"""Everything that touches Ray Tune lives in this module, because Ray's API moves between
releases. One Tune experiment per (task, model): OptunaSearch (seeded TPE) proposes
configurations, ASHA stops weak trials early, each trial is ``seqicl.train.train``."""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from seqicl.atomic import atomic_write_text
from seqicl.config import set_dotted

from .search_space import Param


def init_ray(address: str | None, root: Path, dashboard: bool = False) -> None:
    """Connect to a cluster (``address``) or start a local one. Trials import ``seqicl`` and
    ``sweeps`` from the repository: locally through PYTHONPATH, on a cluster by shipping the
    repository as the job's working directory (results and caches left out)."""
    # Tune warns when checkpoints come faster than it snapshots; with tiny models they do
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    if ray.is_initialized():
        return
    kwargs = dict(include_dashboard=dashboard, dashboard_host="127.0.0.1", logging_level="warning")
    if address:
        env = {"working_dir": str(root), "excludes": [".git", ".whl", "results", "runs", "*.pt"]}
        ray.init(address=address, runtime_env=env, **kwargs)
        return
    # an embedded single-machine cluster: loopback only, so no token auth
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    # MPS clients must see the daemon's pipe directory (sweeps/mps.py exports it before this call)
    forward = ("SEQICL_FAULTS", "SEQICL_CACHE", "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")
    env = {"PYTHONPATH": path, **{k: os.environ[k] for k in forward if k in os.environ}}
    ray.init(object_store_memory=256 * 1024 ** 2, runtime_env={"env_vars": env}, **kwargs)


def shutdown_ray() -> None:
    import ray
    if ray.is_initialized():
        ray.shutdown()


def to_domain(p: Param):
    from ray import tune
    if p.kind == "loguniform":
        return tune.loguniform(*p.args)
    if p.kind == "uniform":
        return tune.uniform(*p.args)
    if p.kind == "randint":
        return tune.randint(p.args[0], p.args[1] + 1)  # Tune's upper bound is exclusive
    if p.kind == "choice":
        return tune.choice(list(p.args))
    raise ValueError(p.kind)


def injected_fault(trial_dir: Path) -> str | None:
    """Test hook: SEQICL_FAULTS="crash:2,nan:3" makes the trials numbered 2 and 3 (Tune's
    1-based trial index in the folder name) raise, or train into a NaN loss."""
    spec = os.environ.get("SEQICL_FAULTS", "")
    parts = trial_dir.name.split("_")
    index = parts[3] if len(parts) > 3 and parts[3].isdigit() else None
    for item in filter(None, spec.split(",")):
        kind, _, which = item.partition(":")
        if which == index:
            return kind
    return None


def run_trial(params: dict, exp_dir: str, base_cfg: dict | None = None, base_cfgs: dict | None = None) -> None:
    """The Tune trainable: apply the sampled values to the config and train, resuming from
    Tune's checkpoint when the trial is restored. With ``base_cfgs`` (re-seeding), the trial's
    ``job`` parameter names which of those configs it trains.

    The trial writes its files (trial.json, run.json, best.pt, tb/) straight into its folder
    under ``exp_dir`` in the results, not into Tune's working directory: Ray copies that one to
    the results while trials write (a temporary file of an atomic write can vanish under the
    copy), and a reused actor's working directory is not copied at all."""
    import logging

    import torch
    from ray import tune
    from seqicl.train import train

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch is noise
    params = dict(params)
    cfg = copy.deepcopy(base_cfgs[params.pop("job")] if base_cfgs is not None else base_cfg)
    for key, value in params.items():
        set_dotted(cfg, key, value)
    ctx = tune.get_context()
    trial_dir = Path(exp_dir) / Path(ctx.get_trial_dir()).name
    trial_dir.mkdir(parents=True, exist_ok=True)
    cpus = ctx.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    atomic_write_text(trial_dir / "trial.json", json.dumps({"config": cfg, "params": params}, indent=1))
    fault = injected_fault(trial_dir)
    if fault == "crash":
        raise RuntimeError("injected crash (SEQICL_FAULTS)")
    if fault == "nan":
        cfg["optim"].update(lr=1e30, warmup_frac=0.0)
        cfg["train"]["grad_clip"] = 0.0

    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a restored trial: continue where its last checkpoint left off
        with checkpoint.as_directory() as folder:
            resume = torch.load(Path(folder) / "state.pt", weights_only=True)
            if (Path(folder) / "best.pt").is_file():
                shutil.copy2(Path(folder) / "best.pt", trial_dir / "best.pt")

    def on_epoch(metrics: dict, save) -> None:
        if metrics.get("diverged"):  # ranked below every healthy trial, and the reason recorded
            tune.report({**metrics, "best_val": -1.0, "failure": "loss became NaN or infinite"})
            return
        if save is None:
            tune.report(metrics)
            return
        # staged outside the trial folder: Ray syncs that folder and must not see a vanishing copy
        with tempfile.TemporaryDirectory(prefix="seqicl-ckpt-") as tmp:
            save(Path(tmp))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        train(cfg, on_epoch=on_epoch, run_dir=trial_dir, resume=resume)
    except torch.cuda.OutOfMemoryError as e:
        raise RuntimeError(f"CUDA out of memory with config {params}: {str(e).splitlines()[0]}") from None


def progress_callback(name: str, total: int):
    """One line per ended trial instead of Tune's tables: what a researcher watches for."""
    from ray.tune import Callback

    class Progress(Callback):
        def __init__(self):
            self.ended, self.start = 0, time.time()

        def line(self, trial, what: str) -> None:
            self.ended += 1
            r = trial.last_result or {}
            best = r.get("best_val")
            score = f"best val {best:.3f}, test {r.get('test_at_best', 0):.3f}" if isinstance(best, float) and best >= 0 else ""
            print(f"[{name}] {self.ended}/{total} {trial.trial_id} {what} after {r.get('epoch', 0)} epochs"
                  f"{': ' + score if score else ''} ({time.time() - self.start:.0f} s)", flush=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            diverged = (trial.last_result or {}).get("diverged")
            self.line(trial, "diverged" if diverged else "ended")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.line(trial, "ERRORED")

    return Progress()


def to_grid(p: Param, points: int = 3):
    """The original project's exhaustive grids: every choice, a few points of a range."""
    from ray import tune
    if p.kind == "choice":
        return tune.grid_search(list(p.args))
    lo, hi = p.args
    if p.kind == "randint":
        return tune.grid_search(sorted({round(lo + (hi - lo) * i / (points - 1)) for i in range(points)}))
    if p.kind == "loguniform":
        return tune.grid_search([lo * (hi / lo) ** (i / (points - 1)) for i in range(points)])
    return tune.grid_search([lo + (hi - lo) * i / (points - 1) for i in range(points)])


def run_experiment(*, cfg: dict, space: dict[str, Param], storage: Path, name: str, num_samples: int,
                   max_concurrent: int, cpus_per_trial: float, gpus_per_trial: float, seed: int,
                   grace_period: int, reduction_factor: float, max_failures: int, resume: bool,
                   verbose: int = 0, style: str = "seqicl", time_budget_s: float | None = None):
    """Run (or resume) one Tune experiment in ``storage/name``. Returns True when every trial
    ended (finished, stopped early or errored) or ``time_budget_s`` ran out, False when the run
    was interrupted.

    ``style="original"`` reproduces how the original project swept, for benchmarks: the whole
    grid in order, no early stopping (``num_samples``, ``grace_period`` and ``reduction_factor``
    are then unused)."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = "best_val"
    fixed = {k: p.args[0] for k, p in space.items() if p.kind == "fixed"}
    base = copy.deepcopy(cfg)
    for key, value in fixed.items():
        set_dotted(base, key, value)
    epochs = base["train"]["epochs"]
    exp_dir = storage / name
    trainable = tune.with_resources(tune.with_parameters(run_trial, exp_dir=str(exp_dir), base_cfg=base),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    if resume and tune.Tuner.can_restore(str(exp_dir)):
        print(f"[{name}] resuming {exp_dir}", flush=True)
        results = tune.Tuner.restore(str(exp_dir), trainable, resume_errored=False).fit()
        save_study(results, space, exp_dir / "optuna_study.log", name, metric)
        return complete(results, num_samples)
    # the live study stays in memory: Tune snapshots and restores it with the experiment, and a
    # file written beside it during the run would disagree with a restored snapshot
    tunable = {k: p for k, p in space.items() if p.kind != "fixed"}
    if style == "original":
        searcher, scheduler, num_samples = None, None, 1
        param_space = {k: to_grid(p) for k, p in tunable.items()}
    else:
        searcher = OptunaSearch(metric=metric, mode="max", sampler=optuna.samplers.TPESampler(seed=seed))
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                                  grace_period=min(grace_period, epochs), reduction_factor=reduction_factor)
        param_space = {k: to_domain(p) for k, p in tunable.items()}
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=metric, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=max_concurrent,
                                    time_budget_s=time_budget_s,
                                    # a trial's process goes on to the next trial: no new Python, torch
                                    # import and CUDA context per trial (2.3x the trials/min on a CPU)
                                    reuse_actors=style != "original"),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=verbose,
            callbacks=[progress_callback(name, num_samples if style != "original" else grid_size(param_space))],
            failure_config=tune.FailureConfig(max_failures=max_failures),
            # the latest checkpoint: it holds the state to resume from and the best weights so far
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    started = time.time()
    results = tuner.fit()
    save_study(results, space, exp_dir / "optuna_study.log", name, metric)
    # a spent time budget ends the experiment by design: its unfinished trials count as stopped
    budget_spent = time_budget_s is not None and time.time() - started >= time_budget_s
    return budget_spent or complete(results, num_samples)


def run_reseeds(*, jobs: dict[str, dict], storage: Path, name: str, max_concurrent: int,
                cpus_per_trial: float, gpus_per_trial: float, resume: bool,
                time_budget_s: float | None = None) -> bool:
    """Every job (a full config, its seed set) as one trial of a single experiment
    ``storage/name``: the chosen configurations re-run side by side, no searcher, no early
    stopping. Returns True when every trial ended or ``time_budget_s`` ran out, False when
    interrupted."""
    from ray import tune

    exp_dir = storage / name
    trainable = tune.with_resources(tune.with_parameters(run_trial, exp_dir=str(exp_dir), base_cfgs=jobs),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    if resume and tune.Tuner.can_restore(str(exp_dir)):
        print(f"[{name}] resuming {exp_dir}", flush=True)
        return complete(tune.Tuner.restore(str(exp_dir), trainable, resume_errored=False).fit(), len(jobs))
    tuner = tune.Tuner(
        trainable,
        param_space={"job": tune.grid_search(sorted(jobs))},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    time_budget_s=time_budget_s),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0,
                                  callbacks=[progress_callback(name, len(jobs))],
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    started = time.time()
    results = tuner.fit()
    return (time_budget_s is not None and time.time() - started >= time_budget_s) or complete(results, len(jobs))


def grid_size(param_space: dict) -> int:
    size = 1
    for domain in param_space.values():
        size *= len(domain["grid_search"])
    return size


def save_study(results, space: dict[str, Param], path: Path, name: str, metric: str) -> None:
    """Write the experiment's trials as an Optuna study (journal file) beside the results:
    ``optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(path)))``.
    Trials stopped by ASHA count as complete with their best value, as Optuna saw them;
    errored and diverged trials as failed."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState, create_trial

    dists = {}
    for key, p in space.items():
        if p.kind in ("loguniform", "uniform"):
            dists[key] = FloatDistribution(p.args[0], p.args[1], log=p.kind == "loguniform")
        elif p.kind == "randint":
            dists[key] = IntDistribution(p.args[0], p.args[1])
        elif p.kind == "choice":
            dists[key] = CategoricalDistribution(list(p.args))
    trials = []
    for r in results:
        params = {k: v for k, v in (r.config or {}).items() if k in dists}
        value = (r.metrics or {}).get(metric)
        failed = r.error is not None or (r.metrics or {}).get("diverged") or value is None
        trials.append(create_trial(params=params, distributions={k: dists[k] for k in params},
                                   value=None if failed else value,
                                   state=TrialState.FAIL if failed else TrialState.COMPLETE))
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    study = optuna.create_study(study_name=name, direction="maximize",
                                storage=JournalStorage(JournalFileBackend(str(tmp))))
    study.add_trials(trials)
    os.replace(tmp, path)


def complete(results, num_samples: int) -> bool:
    """Whether the experiment ran to its end (Tune returns early when interrupted)."""
    ended = results.num_terminated + results.num_errors
    return len(results) >= num_samples and ended == len(results)
