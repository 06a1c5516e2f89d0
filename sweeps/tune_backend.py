"""Everything that touches Ray lives in this module, because Ray's API moves between releases.

Ray runs the trials; seqicl keeps the state. Each trial trains into its own folder of the
results (``seqicl.train`` writes the record and the training state there), the searcher asks
an Optuna study kept in a journal file (``sweeps/study.py``), and the early-stopping rungs
are rebuilt from the trial records (``sweeps/asha.py``). So a sweep resumes with a fresh
Tuner, never from Tune's pickled experiment state, and Tune's own files live in a scratch
folder (``<results>/.ray``) that seqicl never reads and deletes when an experiment ends.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

from seqicl.train.record import RecordError, RunRecord

from .asha import Rungs
from .locks import locked
from .study import record_status, trial_dir

SCRATCH = ".ray"


def init_ray(address: str | None, root: Path, dashboard: bool = False) -> None:
    """Connect to a cluster (``address``) or start a local one that listens on 127.0.0.1 only,
    with a fresh authentication token known only to this driver and its children. Trials import
    ``seqicl`` and ``sweeps`` from the repository: locally through PYTHONPATH, on a cluster by
    shipping the repository as the job's working directory (results and caches left out)."""
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # Tune's JSON/CSV/TBX copies of our record
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not address:
        # Ray binds its servers to the node address; without "cluster mode" that is 127.0.0.1.
        # Read when ray is imported, and inherited by every process the cluster starts.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # once per process: Ray caches it
    import ray
    import ray._private.ray_constants as constants
    if not address:
        constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before this call
    if ray.is_initialized():
        return
    for name in ("ray.tune", "ray.train", "ray._private.authentication"):
        logging.getLogger(name).setLevel(logging.ERROR)  # progress is ours: one line per trial
    kwargs = dict(include_dashboard=dashboard, dashboard_host="127.0.0.1", logging_level="warning",
                  log_to_driver=True)
    if address:
        env = {"working_dir": str(root), "excludes": [".git", ".whl", "results", "runs", "*.pt"]}
        ray.init(address=address, runtime_env=env, **kwargs)
        return
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    # MPS clients must see the daemon's pipe directory (sweeps/mps.py exports it before this call)
    forward = ("SEQICL_FAULTS", "SEQICL_CACHE", "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")
    env = {"PYTHONPATH": path, **{k: os.environ[k] for k in forward if k in os.environ}}
    ray.init(address="local", object_store_memory=256 * 1024 ** 2, runtime_env={"env_vars": env}, **kwargs)


def shutdown_ray() -> None:
    import ray
    if ray.is_initialized():
        ray.shutdown()


def dashboard_missing() -> str | None:
    """Why ``--dashboard`` cannot work here, or None."""
    import importlib.util
    missing = [m for m in ("aiohttp", "aiohttp_cors", "opencensus", "prometheus_client") if importlib.util.find_spec(m) is None]
    return f"needs Ray's dashboard packages (missing {', '.join(missing)}): pip install 'ray[default]'" if missing else None


def injected_fault(trial: str) -> str | None:
    """Test hook: SEQICL_FAULTS="crash:0002,nan:0003" makes trial 0002 raise (every attempt)
    and trial 0003 train into a NaN loss."""
    for item in filter(None, os.environ.get("SEQICL_FAULTS", "").split(",")):
        kind, _, which = item.partition(":")
        if which == trial:
            return kind
    return None


def run_trial(config: dict, exp_dir: str) -> None:
    """The Tune trainable: train ``config["cfg"]`` into the trial's folder of the results,
    continuing from its training state when the trial ran before (a retry, a resumed sweep).
    The folder's lock waits for a process of an earlier attempt that may still be alive."""
    import torch
    from ray import tune
    from seqicl.train import train

    trial, cfg = config["trial"], config["cfg"]
    folder = trial_dir(Path(exp_dir), trial)
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    fault = injected_fault(trial)
    if fault == "crash":
        raise RuntimeError("injected crash (SEQICL_FAULTS)")
    if fault == "nan":
        cfg["optim"].update(lr=1e30, warmup_frac=0.0)
        cfg["train"]["grad_clip"] = 0.0
    with locked(folder / ".lock", wait_s=120, what=f"trial folder {folder}"):
        try:
            summary = train(cfg, run_dir=folder, on_epoch=tune.report,
                            meta={"trial": trial, "sampled": config["sampled"]})
        except torch.cuda.OutOfMemoryError as e:
            raise RuntimeError(f"CUDA out of memory with {config['sampled']}: {str(e).splitlines()[0]}") from None
    if summary["status"] == "diverged":  # ranked below every healthy trial by ASHA and the searcher
        tune.report({"epoch": summary["epochs"], "best_val": -1.0, "diverged": 1})


def _classes():
    """The Tune-facing adapters, built on first use so importing this module needs no Ray."""
    from ray.tune import Callback
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher

    class TrialSearcher(Searcher):
        """Hands Tune the trials of a seqicl trial source, one config per trial."""

        def __init__(self, source):
            super().__init__(metric="best_val", mode="max")
            self.source = source

        def suggest(self, trial_id):
            nxt = self.source.next()
            if nxt is None:
                return Searcher.FINISHED
            name, cfg, sampled = nxt
            return {"trial": name, "cfg": cfg, "sampled": sampled}

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass  # RecordKeeper tells the source, once the record says how the trial ended

        def save(self, checkpoint_path):
            pass  # the state is in the journal and the records

        def restore(self, checkpoint_path):
            pass

        def save_to_dir(self, *args, **kwargs):
            pass  # Tune would pickle the searcher (and its study) into its scratch folder

        def restore_from_dir(self, *args, **kwargs):
            pass

    class RungScheduler(FIFOScheduler):
        """ASHA over the rungs in ``sweeps/asha.py``; remembers whom it stopped and when."""

        def __init__(self, rungs: Rungs | None, stopped: dict[str, int]):
            super().__init__()
            self.rungs, self.stopped = rungs, stopped   # rungs None: no early stopping

        def on_trial_result(self, tune_controller, trial, result):
            name, score = trial.config["trial"], result.get("best_val")
            if self.rungs is None or "epoch" not in result or not isinstance(score, (int, float)) or result.get("diverged"):
                return TrialScheduler.CONTINUE
            if self.rungs.decide(name, result["epoch"], score):
                self.stopped[name] = result["epoch"]
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    class RecordKeeper(Callback):
        """How each trial ended, into its record (where the trial could not say: stopped early,
        or its process died) and to the source, record first; then its line on the console."""

        def __init__(self, keeper):
            self.keeper = keeper

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.keeper.ended(trial.config, died=False)
            self.keeper.print_line(trial.config["trial"])

        def on_trial_error(self, iteration, trials, trial, **info):
            self.keeper.ended(trial.config, died=True, why=last_error_line(trial))
            self.keeper.print_line(trial.config["trial"])

    return TrialSearcher, RungScheduler, RecordKeeper


class Keeper:
    """The driver's side of one experiment's records: final statuses, the source, the console."""

    def __init__(self, exp_dir: Path, label: str, source, total: int):
        self.exp_dir, self.label, self.source, self.total = exp_dir, label, source, total
        self.stopped: dict[str, int] = {}
        self.ended_count, self.start, self.told = 0, time.time(), set()

    def record(self, trial: str) -> RunRecord:
        return RunRecord(trial_dir(self.exp_dir, trial))

    def finish(self, trial: str, status: str, reason: str | None, config: dict | None = None) -> None:
        """The record's final status (a trial that failed before training gets a record here,
        so it is listed), then the source is told, record first."""
        record = self.record(trial)
        try:
            if not record.exists() and config is not None:
                record.start(config["cfg"], {}, 0, "unknown", {"trial": trial, "sampled": config["sampled"]})
            rows = record.epochs()
            if record_status(self.exp_dir, trial) != status:
                record.set_status(status, reason)
        except RecordError:
            rows = []
        self.source.tell(trial, status, rows[-1].get("best_val") if rows else None)
        self.told.add(trial)

    def ended(self, config: dict, died: bool, why: str | None = None) -> None:
        trial = config["trial"]
        status = record_status(self.exp_dir, trial)
        if status in ("finished", "diverged") or (status == "errored" and died):
            self.finish(trial, status, None)
        elif died:  # it raised before its record said so, or its process was killed
            self.finish(trial, "errored", why or "the trial's process died (killed, or out of memory)", config)
        elif trial in self.stopped:
            self.finish(trial, "stopped", f"early stopping: below the rung cutoff at epoch {self.stopped[trial]}")
            (trial_dir(self.exp_dir, trial) / "state.pt").unlink(missing_ok=True)  # never continued
        # else: the sweep is being interrupted or its time budget ran out (see run_experiment)

    def print_line(self, trial: str) -> None:
        if trial not in self.told:
            return
        self.ended_count += 1
        status = record_status(self.exp_dir, trial)
        rows = self.record(trial).epochs()
        last = rows[-1] if rows else {}
        score = (f": best val {last['best_val']:.3f}, test {last.get('test_at_best', 0):.3f}"
                 if status not in ("errored", "diverged") and isinstance(last.get("best_val"), float) else "")
        print(f"[{self.label}] {self.ended_count}/{self.total} trial {trial} {status} after {last.get('epoch', 0)} "
              f"epochs{score} ({time.time() - self.start:.0f} s)", flush=True)


def last_error_line(trial) -> str | None:
    """The last line of Tune's error file of a trial (the exception, or the actor's death)."""
    try:
        lines = [x for x in Path(trial.error_file).read_text().splitlines() if x.strip()]
        return lines[-1].strip()[:300] if lines else None
    except (OSError, TypeError):
        return None


def run_experiment(*, source, exp_dir: Path, storage: Path, label: str, rungs: Rungs | None,
                   max_concurrent: int, cpus_per_trial: float, gpus_per_trial: float, max_failures: int,
                   time_budget_s: float | None = None, reuse_actors: bool = True) -> str:
    """Run the remaining trials of one experiment. Returns "complete", "budget" (the time budget
    ended it: its unfinished trials are recorded as stopped) or "interrupted"."""
    from ray import tune

    remaining = source.remaining()
    if remaining == 0:
        return "complete"
    TrialSearcher, RungScheduler, RecordKeeper = _classes()
    keeper = Keeper(exp_dir, label, source, remaining)
    scheduler = RungScheduler(rungs, keeper.stopped)
    trainable = tune.with_resources(tune.with_parameters(run_trial, exp_dir=str(exp_dir)),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    name = f"{label.replace('/', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=TrialSearcher(source), scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=max_concurrent, time_budget_s=time_budget_s,
                                    # a trial's process goes on to the next trial: no new Python, torch
                                    # import and CUDA context per trial (2.3x the trials/min on a CPU)
                                    reuse_actors=reuse_actors),
        run_config=tune.RunConfig(name=name, storage_path=str(storage / SCRATCH), verbose=0,
                                  callbacks=[RecordKeeper(keeper)],
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    started = time.time()
    tuner.fit()
    shutil.rmtree(storage / SCRATCH / name, ignore_errors=True)
    if source.remaining() == 0 and not _untold(keeper, exp_dir):
        return "complete"
    if time_budget_s is not None and time.time() - started >= time_budget_s:
        for trial in _untold(keeper, exp_dir):
            keeper.finish(trial, "stopped", f"the time budget of {time_budget_s:g} s ran out")
        return "budget"
    return "interrupted"


def _untold(keeper: Keeper, exp_dir: Path) -> list[str]:
    """Trials started in this run whose end the source has not heard of."""
    folder = exp_dir / "trials"
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return [n for n in names if n not in keeper.told and record_status(exp_dir, n) == "running"]


def terminate_on_sigterm() -> None:
    """SIGTERM ends the driver like Ctrl-C: Ray and MPS are stopped by the callers' ``finally``."""
    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
