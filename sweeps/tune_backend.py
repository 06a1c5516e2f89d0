"""Everything that touches Ray Tune lives in this module, because Ray's API moves between
releases. One Tune experiment per (task, model): OptunaSearch (seeded TPE) proposes
configurations, ASHA stops weak trials early, each trial is ``seqicl.train.train``."""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

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
    ray.init(object_store_memory=256 * 1024 ** 2, runtime_env={"env_vars": {"PYTHONPATH": path}}, **kwargs)


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


def run_trial(params: dict, base_cfg: dict) -> None:
    """The Tune trainable: apply the sampled values to the config and train."""
    import logging

    import torch
    from ray import tune
    from seqicl.train import train

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one "checkpoint created" line per epoch is noise
    cfg = copy.deepcopy(base_cfg)
    for key, value in params.items():
        set_dotted(cfg, key, value)
    ctx = tune.get_context()
    trial_dir = Path(ctx.get_trial_dir())
    cpus = ctx.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))

    def on_epoch(metrics: dict, ckpt: Path | None) -> None:
        if ckpt is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(dir=trial_dir) as tmp:
            shutil.copy2(ckpt, Path(tmp) / ckpt.name)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    train(cfg, on_epoch=on_epoch, run_dir=trial_dir)


def run_experiment(*, cfg: dict, space: dict[str, Param], storage: Path, name: str, num_samples: int,
                   max_concurrent: int, cpus_per_trial: float, gpus_per_trial: float, seed: int,
                   grace_period: int, reduction_factor: float, max_failures: int, resume: bool,
                   verbose: int = 1):
    """Run (or resume) one Tune experiment in ``storage/name``; returns the ResultGrid."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric, epochs = "best_val", cfg["train"]["epochs"]
    fixed = {k: p.args[0] for k, p in space.items() if p.kind == "fixed"}
    base = copy.deepcopy(cfg)
    for key, value in fixed.items():
        set_dotted(base, key, value)
    epochs = base["train"]["epochs"]
    trainable = tune.with_resources(tune.with_parameters(run_trial, base_cfg=base),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    exp_dir = storage / name
    if resume and tune.Tuner.can_restore(str(exp_dir)):
        tuner = tune.Tuner.restore(str(exp_dir), trainable, resume_errored=True)
        return tuner.fit()
    exp_dir.mkdir(parents=True, exist_ok=True)
    # Optuna's study in a journal file beside the results: optuna.load_study() reads it back
    study_storage = JournalStorage(JournalFileBackend(str(exp_dir / "optuna_study.log")))
    searcher = OptunaSearch(metric=metric, mode="max", sampler=optuna.samplers.TPESampler(seed=seed),
                            study_name=name, storage=study_storage)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                              grace_period=min(grace_period, epochs), reduction_factor=reduction_factor)
    tuner = tune.Tuner(
        trainable,
        param_space={k: to_domain(p) for k, p in space.items() if p.kind != "fixed"},
        tune_config=tune.TuneConfig(metric=metric, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=metric,
                                                    checkpoint_score_order="max"),
        ),
    )
    return tuner.fit()
