"""Everything that touches Ray lives in this module, because Ray's API moves between releases.

Ray runs the trials; seqicl keeps the state. Each trial trains into its own folder of the
results (``seqicl.train`` writes the record and the training state there), the searcher asks
an Optuna study kept in a journal file (``sweeps/study.py``), and the early-stopping rungs
are rebuilt from the trial records (``sweeps/asha.py``). So a sweep resumes with a fresh
Tuner, never from Tune's pickled experiment state, and Tune's own files live in a scratch
folder (``<results>/.ray``) that seqicl never reads and deletes when an experiment ends.

The rest of seqicl calls one function, ``run_experiments``: it starts MPS (where asked) and Ray,
runs every experiment in one Tuner, and stops both again. Nothing outside this module names Ray,
its folders or its environment variables.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seqicl.atomic import atomic_write_text
from seqicl.config import ConfigError
from seqicl.train.record import FINAL, RecordError, RunRecord

from . import leftovers, mps
from .asha import RungReports, Rungs
from .locks import locked
from .progress import Progress
from .study import last_score, record_status, trial_dir

SCRATCH = ".ray"


def default_address() -> str | None:
    """The cluster a driver joins when ``--address`` is left out: Ray's own variable, if set."""
    return os.environ.get("RAY_ADDRESS") or None


def init_ray(address: str | None, root: Path, dashboard: bool = False) -> None:
    """Connect to a cluster (``address``) or start a local one that listens on 127.0.0.1 only,
    with a fresh authentication token known only to this driver and its children. Trials import
    ``seqicl`` and ``sweeps`` from the repository: locally through PYTHONPATH, on a cluster by
    shipping the repository as the job's working directory (results and caches left out)."""
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # Tune's JSON/CSV/TBX copies of our record
    # Tune's own console (its experiment box, and a TensorBoard hint naming its scratch folder):
    # the old output engine at verbose=0 prints nothing; sweeps/progress.py is the console
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
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
    ray.init(address="local", object_store_memory=256 * 1024 ** 2, runtime_env={"env_vars": env},
             num_gpus=fake_gpus() or None, **kwargs)  # None: Ray counts the machine's GPUs


def cluster_resources() -> dict:
    import ray
    return ray.cluster_resources()


def cluster_gpus(address: str) -> float:
    """The GPUs of the cluster at ``address``, asked before the sweep is planned: the default
    preset and packing follow the cluster's GPUs, not those of the machine the driver runs on
    (a head without a GPU). A short connection of its own, with nothing shipped."""
    import ray
    try:
        ray.init(address=address, include_dashboard=False, logging_level="error", log_to_driver=False)
        return float(ray.cluster_resources().get("GPU", 0.0))
    except Exception as e:  # a cluster that will not answer (or refuses the token): one line
        raise ConfigError(f"cannot reach the Ray cluster at {address}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        shutdown_ray()


def shutdown_ray() -> None:
    import ray
    if ray.is_initialized():
        ray.shutdown()


def where_am_i() -> dict:
    """The Ray node this process runs on: its id, unique in the cluster, and its address."""
    import ray
    return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}


def storage_seen_here(folder: str, probe: str, token: str) -> str | None:
    """Run on one node: why this node does not share the driver's results folder, or None.
    The driver wrote ``token`` into ``probe`` there; a folder of this machine's own at the same
    path (a local /tmp) has no such file or another token."""
    try:
        if (Path(folder) / probe).read_text() != token:
            return "sees another folder at that path"
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileNotFoundError:
        return "cannot see it"
    except OSError as e:
        return f"cannot read or write it ({e.strerror or type(e).__name__})"
    return None


def check_storage_on_nodes(storage: Path, timeout_s: float = 180) -> int:
    """Every alive node of the cluster must read and write the driver's results folder, or its
    trials' records would land on that node's disk and be lost to the sweep. Checked before any
    trial starts by a task pinned to each node. Returns the number of nodes; raises ConfigError."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    token = secrets.token_hex(16)
    probe = storage / f".node-probe-{token[:12]}"
    atomic_write_text(probe, token)
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        check = ray.remote(num_cpus=0, max_retries=0)(storage_seen_here)
        refs = [check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(storage), probe.name, token) for n in nodes]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for node, ref in zip(nodes, refs):
            where = f"--storage {storage}: Ray node {node['NodeManagerAddress']} ({node['NodeID'][:12]})"
            if ref not in ready:
                raise ConfigError(f"{where} did not answer the storage check within {timeout_s:g} s")
            try:
                why = ray.get(ref)
            except ray.exceptions.RayError as e:
                why = f"failed the storage check ({type(e).__name__})"
            if why:
                raise ConfigError(f"{where} {why}: give a folder on a file system that every node mounts "
                                  "at the same path")
    finally:
        probe.unlink(missing_ok=True)
    return len(nodes)


def dashboard_missing() -> str | None:
    """Why ``--dashboard`` cannot work here, or None."""
    import importlib.util
    missing = [m for m in ("aiohttp", "aiohttp_cors", "opencensus", "prometheus_client") if importlib.util.find_spec(m) is None]
    return f"needs Ray's dashboard packages (missing {', '.join(missing)}): pip install 'ray[default]'" if missing else None


FAULT_KINDS = ("crash", "nan", "oom", "oom-always")


def injected_faults() -> dict[str, str]:
    """Test hook: SEQICL_FAULTS="crash:0002,nan:0003,oom:0001" makes trial 0002 raise (every
    attempt), trial 0003 train into a NaN loss and trial 0001 run out of GPU memory (its first
    start only, or every start with "oom-always"). Trial -> fault; anything else is one line
    (ConfigError), so that a mistyped fault never lets a test pass without its fault."""
    faults = {}
    for item in filter(None, os.environ.get("SEQICL_FAULTS", "").split(",")):
        kind, _, which = item.partition(":")
        if kind not in FAULT_KINDS or not which:
            raise ConfigError(f"SEQICL_FAULTS takes kind:trial items ({', '.join(FAULT_KINDS)}), got {item!r}")
        faults[which] = kind
    return faults


def injected_fault(trial: str) -> str | None:
    return injected_faults().get(trial)


def fake_gpus() -> int:
    """Test hook: SEQICL_FAKE_GPUS=2 starts the local cluster with two GPUs that are not there, to
    test packing trials per GPU on a machine without one. Ray schedules by the count alone; the
    trials see no CUDA device and train on the CPU."""
    value = os.environ.get("SEQICL_FAKE_GPUS") or "0"
    if not value.isdigit():
        raise ConfigError(f"SEQICL_FAKE_GPUS must be a number of GPUs, got {value!r}")
    return int(value)


def run_trial(config: dict) -> None:
    """The Tune trainable: train ``config["cfg"]`` into the trial's folder of the results,
    continuing from its training state when the trial ran before (a retry, a resumed sweep).
    Tune hears of the trial only at ASHA's rungs (``config["rungs"]``): each report is a round
    trip to the driver that the trial waits for, so reporting every epoch would stall it.
    The folder's lock waits for a process of an earlier attempt that may still be alive."""
    import torch
    from ray import tune
    from seqicl.train import train
    from seqicl.train.loop import is_out_of_memory

    trial, cfg, rungs = config["trial"], config["cfg"], config["rungs"]
    folder = trial_dir(Path(config["exp_dir"]), trial)
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    fault = injected_fault(trial)
    if fault == "crash":
        raise RuntimeError("injected crash (SEQICL_FAULTS)")
    marker = folder / ".oom-injected"
    if fault == "oom-always" or (fault == "oom" and not marker.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        marker.touch()
        fault = "oom"
    elif fault == "oom":
        fault = None
    if fault == "nan":
        cfg["optim"].update(lr=1e30, warmup_frac=0.0)
        cfg["train"]["grad_clip"] = 0.0

    reported, due = [], RungReports(rungs)

    def at_rungs(metrics: dict) -> None:
        if due(metrics["epoch"]):
            tune.report({k: metrics[k] for k in ("epoch", "best_val", "test_at_best")})
            reported.append(metrics["epoch"])

    stopped, out_of_memory = False, None
    with locked(folder / ".lock", wait_s=120, what=f"trial folder {folder}"):
        # every attempt names its node in run.json: on a cluster, where each part of a record was made
        record = RunRecord(folder)
        nodes = record.run().get("nodes", []) if record.exists() else []
        nodes.append(where_am_i())
        if record.exists() and record.status()["status"] not in FINAL:
            record.note(nodes=nodes)  # a retry or a resumed sweep: train() keeps run.json
        try:
            if fault == "oom":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB (injected: SEQICL_FAULTS)")
            summary = train(cfg, run_dir=folder, on_epoch=at_rungs, save_at=config["rungs"],
                            meta={"trial": trial, "sampled": config["sampled"], "nodes": nodes})
        except SystemExit:  # Tune stopped the trial at a rung (its report raised in this thread)
            stopped = True  # freed below, once the exception no longer holds the trial's frames
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            out_of_memory = f"CUDA out of memory with {config['sampled']}: {str(e).splitlines()[0]}"[:300]
    release_memory()  # this process may go on to another trial (reused actors): give the GPU back
    if stopped:
        raise SystemExit(0)
    if out_of_memory:  # the searcher decides: start it again beside fewer trials, or record it errored
        tune.report({"best_val": -1.0, "out_of_memory": out_of_memory})
        return
    if summary["status"] == "diverged":  # ranked below every healthy trial by ASHA and the searcher
        tune.report({"epoch": summary["epochs"], "best_val": -1.0, "diverged": 1})
    elif summary["epochs"] < cfg["train"]["epochs"]:  # finished at its best possible score, early
        tune.report({"epoch": summary["epochs"], "best_val": summary["best_val"], "test_at_best": summary["test_at_best"],
                     "perfect": 1})
    elif not reported or reported[-1] != summary["epochs"]:  # Tune's last word: the trial's end
        tune.report({"epoch": summary["epochs"], "best_val": summary["best_val"], "test_at_best": summary["test_at_best"]})


def release_memory() -> None:
    """Give the GPU back what the last trial left in the allocator's cache (its model, optimiser,
    captured graph and data are freed by reference counting once ``train`` has returned or
    unwound): an idle or reused process then holds no memory the other trials could use. No
    ``gc.collect()``: it found nothing to free on the H200 and delays the next trial's start."""
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


OOM_RETRIES = 3   # a trial out of GPU memory beside others starts again at most this often


def cap_after_out_of_memory(others: int, earlier: int) -> int:
    """How many trials may share the memory after a trial ran out of GPU memory beside ``others``,
    having done so ``earlier`` times before: one fewer than ran at first, then half as many. A
    trial that fails again needs more than one slot's memory: on 2026-12-07 Mamba's 8 x 512 ran
    out beside 15, 13, 11 and 9 others and was lost, the cap falling by one or two each time."""
    return others if earlier == 0 else max(1, others // 2)


def others_beside(running: int, share: float) -> int:
    """Of ``running`` other trials in the cluster, those that shared the memory of a trial that
    held ``share`` of a GPU and ran out of it. With GPUs, those on its GPU only: it held at most
    trials_per_gpu(share) trials, so one full GPU of eight limits how many share a GPU (the trials'
    share grows, ``TrialSearcher``), not how many run on the other seven; at a whole GPU it was
    alone. Counted as if all held its share: beside older trials of a smaller share the count is
    low, and the next limit errs tight. On a CPU sweep (share 0) all of them, and the limit is a
    count of trials at once: CUDA runs out of memory there only through the test hook SEQICL_FAULTS."""
    return min(running, trials_per_gpu(share) - 1) if share > 0 else running


def share_after_out_of_memory(share: float, at_most: int) -> float:
    """Each new trial's share of a GPU once at most ``at_most`` may share one; never smaller."""
    return max(share, 1 / at_most)


def trials_per_gpu(share: float) -> int:
    """How many trials of ``share`` Ray fits on one GPU (0.35: 2, not round(1 / 0.35) = 3)."""
    return int(1 / share + 1e-9)


@dataclass
class Lane:
    """One experiment inside a sweep run: where its trials come from and go, and its rungs."""
    label: str                 # e.g. induction/transformer
    exp_dir: Path
    source: object             # sweeps.study.OptunaTrials or FixedTrials
    rungs: Rungs | None        # None: no early stopping
    total: int                 # the experiment's trials in all, for the progress lines


def pick_lane(lanes: list[Lane], running: list[int], launched: list[int]) -> int | None:
    """The experiment the next free slot goes to: among those with trials left to start, the one
    with the fewest trials running, then the fewest started in this run (so with fewer slots
    than experiments they take turns), then the first. None when every experiment is started."""
    open_ = [i for i, lane in enumerate(lanes) if lane.source.remaining() > 0]
    return min(open_, key=lambda i: (running[i], launched[i], i)) if open_ else None


def _classes():
    """The Tune-facing adapters, built on first use so importing this module needs no Ray."""
    from ray.tune import Callback
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher

    class TrialSearcher(Searcher):
        """Hands Tune the trials of every experiment's source, sharing the slots fairly
        (``pick_lane``): one experiment's tail (ASHA's few survivors) leaves its slots to the others.
        A trial that ran out of GPU memory beside others goes back to its source (``Keeper.out_of_memory``),
        and from then on fewer trials share a GPU: each new trial asks Ray for a larger share of one
        (``share``, in its config as ``gpu_share``; ``run_lanes`` requests it), or on a CPU sweep fewer
        run at once (``cap``). The slot count assumed the trials fit, and these did not."""

        def __init__(self, lanes: list[Lane], keepers: list["Keeper"], gpu_share: float = 0.0):
            super().__init__(metric="best_val", mode="max")
            self.lanes, self.keepers = lanes, keepers
            self.running, self.launched = [0] * len(lanes), [0] * len(lanes)
            self.given: dict[str, dict] = {}          # Tune's trial id -> the config handed out
            self.share = gpu_share                    # of a GPU, for each new trial; 0 on a CPU sweep
            self.cap: int | None = None

        def suggest(self, trial_id):
            if self.cap is not None and sum(self.running) >= self.cap:
                return None                           # not now: Tune asks again
            i = pick_lane(self.lanes, self.running, self.launched)
            if i is None:  # a running trial may still come back (out of memory): done once none runs
                return Searcher.FINISHED if sum(self.running) == 0 else None
            name, cfg, sampled = self.lanes[i].source.next()
            self.running[i] += 1
            self.launched[i] += 1
            rungs = self.lanes[i].rungs.milestones if self.lanes[i].rungs else []
            self.given[trial_id] = {"lane": i, "trial": name, "exp_dir": str(self.lanes[i].exp_dir), "rungs": rungs,
                                    "cfg": cfg, "sampled": sampled, **({"gpu_share": self.share} if self.share else {})}
            return self.given[trial_id]

        def on_trial_complete(self, trial_id, result=None, error=False):
            # the slot is free; RecordKeeper tells the source, once the record says how the trial ended.
            # Tune calls this before its callbacks (TuneController.stop_trial), so a trial sent back
            # here is already waiting when RecordKeeper hears of its end.
            config = self.given.pop(trial_id, None)
            if config is None:
                return
            self.running[config["lane"]] -= 1
            why = (result or {}).get("out_of_memory")
            if why and not error:
                others = others_beside(sum(self.running), config.get("gpu_share", 0.0))
                at_most = self.keepers[config["lane"]].out_of_memory(config, why, others, self.share)
                if at_most is None:
                    return
                if self.share:  # trials already running keep their share; Ray packs the new ones looser
                    self.share = share_after_out_of_memory(self.share, at_most)
                else:
                    self.cap = at_most if self.cap is None else min(self.cap, at_most)

        def save(self, checkpoint_path):
            pass  # the state is in the journal and the records

        def restore(self, checkpoint_path):
            pass

        def save_to_dir(self, *args, **kwargs):
            pass  # Tune would pickle the searcher (and its studies) into its scratch folder

        def restore_from_dir(self, *args, **kwargs):
            pass

    class RungScheduler(FIFOScheduler):
        """ASHA over each experiment's rungs (``sweeps/asha.py``); remembers whom it stopped and when."""

        def __init__(self, lanes: list[Lane], keepers: list["Keeper"]):
            super().__init__()
            self.lanes, self.keepers = lanes, keepers

        def on_trial_result(self, tune_controller, trial, result):
            lane, name, score = trial.config["lane"], trial.config["trial"], result.get("best_val")
            rungs = self.lanes[lane].rungs
            if rungs is None or "epoch" not in result or not isinstance(score, (int, float)) or result.get("diverged"):
                return TrialScheduler.CONTINUE
            self.keepers[lane].progress.result(lane, score)
            if result.get("perfect"):
                rungs.finish(name, score)
                return TrialScheduler.CONTINUE
            if rungs.decide(name, result["epoch"], score):
                self.keepers[lane].stopped[name] = result["epoch"]
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    class RecordKeeper(Callback):
        """How each trial ended, into its record (where the trial could not say: stopped early,
        or its process died) and to its source, record first; then the console."""

        def __init__(self, keepers: list["Keeper"], progress: Progress):
            self.keepers, self.progress = keepers, progress
            self.seen: set[str] = set()

        def on_trial_start(self, iteration, trials, trial, **info):
            if trial.trial_id not in self.seen:  # Tune's retry of a failed trial starts it again
                self.seen.add(trial.trial_id)
                self.progress.started(trial.config["lane"])

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._ended(trial, died=False)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._ended(trial, died=True, why=last_error_line(trial))

        def _ended(self, trial, died, why=None):
            keeper = self.keepers[trial.config["lane"]]
            keeper.ended(trial.config, died=died, why=why)
            keeper.report_end(trial.config["trial"])

        def on_step(self, iteration, trials, **info):
            self.progress.tick()

    return TrialSearcher, RungScheduler, RecordKeeper


class Keeper:
    """The driver's side of one experiment's records: final statuses, the source, the console."""

    def __init__(self, lane_index: int, lane: Lane, progress: Progress):
        self.index, self.exp_dir, self.label, self.source = lane_index, lane.exp_dir, lane.label, lane.source
        self.progress = progress
        self.stopped: dict[str, int] = {}
        self.told: set[str] = set()
        self.out_of_memory_starts: dict[str, int] = {}
        folder = self.exp_dir / "trials"
        over = [t.name for t in sorted(folder.iterdir())] if folder.is_dir() else []
        over = self.source.ended_before([t for t in over if record_status(self.exp_dir, t) in FINAL])
        scores = [s for t in over if isinstance(s := last_score(self.exp_dir, t), float)]
        progress.preset(lane_index, len(over), max(scores, default=None))

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

    def cut(self, trial: str, reason: str) -> None:
        """A trial the sweep's time budget ended between saved states. Its record stays "running"
        at its last state's epoch (readers count the epochs up to it: RunRecord.kept_epochs), and
        the source is not told: `--resume` continues it from that state, as it does a trial whose
        driver died (seqicl before 2026-12-06 told the search it had ended, so a resumed sweep never
        trained it further). The file is not truncated here: the trial's process may still finish
        an epoch and save its state after this (the likely cause of epochs missing once in CI: the
        truncation dropped the epochs before that state); the resumed run truncates to the state it loads."""
        record = self.record(trial)
        try:
            record.set_status("running", reason, epochs=record.status().get("epochs", 0))
        except RecordError:
            pass

    def out_of_memory(self, config: dict, why: str, others: int, share: float = 0.0) -> int | None:
        """A trial that ran out of GPU memory with ``others`` trials beside it (on its GPU, where
        the trials take ``share`` of one; ``others_beside``): back to its source to start again once
        fewer run (its record stays "running" at its last state, so it goes on from there); returns
        how many may share the memory from now on: a GPU, or with ``share`` 0 the machine (a count
        of trials at once). None when it was alone or has had OOM_RETRIES more starts: errored, with
        the reason."""
        trial = config["trial"]
        starts = self.out_of_memory_starts.get(trial, 0)
        if others == 0 or starts >= OOM_RETRIES:
            where = "alone" if others == 0 else f"{starts + 1} times, the last beside {others} other trials"
            self.finish(trial, "errored", f"{why} ({where})", config)
            return None
        at_most = cap_after_out_of_memory(others, starts)
        self.out_of_memory_starts[trial] = starts + 1
        record = self.record(trial)
        try:
            if record.exists():
                record.set_status("running", f"out of GPU memory beside {others} other trials: waits for fewer",
                                  epochs=record.status().get("epochs", 0))
        except RecordError:
            pass
        self.source.requeue(trial)
        again = " again" if starts else ""
        if share:  # the share the searcher gives from now on
            new = share_after_out_of_memory(share, at_most)
            n = trials_per_gpu(new)
            each = f"1/{n}" if abs(new * n - 1) < 1e-9 else f"{new:g}"   # --gpus-per-trial 0.35: "0.35"
            limit = f"at most {n} trials share a GPU (each takes {each})" if n > 1 else "each trial takes a whole GPU"
            self.progress.waiting(self.index, trial, f"ran out of GPU memory{again} beside {others} other trials on "
                                  f"its GPU: it starts again when a GPU has room, and from now on {limit}")
        else:
            self.progress.waiting(self.index, trial, f"ran out of GPU memory{again} beside {others} other trials: "
                                  f"it starts again when a slot is free, and from now on at most {at_most} "
                                  f"trial{'s' if at_most > 1 else ''} run{'' if at_most > 1 else 's'} at once")
        return at_most

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
        # else: the sweep is being interrupted or its time budget ran out (see run_lanes)

    def report_end(self, trial: str) -> None:
        if trial not in self.told:
            return
        status = record_status(self.exp_dir, trial)
        rows = self.record(trial).kept_epochs()
        last = rows[-1] if rows else {}
        score = last.get("best_val") if status not in ("errored", "diverged") else None
        self.progress.ended(self.index, trial, status, last.get("epoch", 0),
                            score if isinstance(score, float) else None, last.get("test_at_best"))


def last_error_line(trial) -> str | None:
    """The last line of Tune's error file of a trial (the exception, or the actor's death)."""
    try:
        lines = [x for x in Path(trial.error_file).read_text().splitlines() if x.strip()]
        return lines[-1].strip()[:300] if lines else None
    except (OSError, TypeError):
        return None


def trial_resources(cpus_per_trial: float, gpus_per_trial: float):
    """What Ray gives each trial, from its config: its own share of a GPU (``gpu_share``, raised by
    TrialSearcher after a trial ran out of memory), so Ray packs fewer trials on each GPU from then
    on. Tune keeps reused actors per resource request (TuneController._maybe_reuse_cached_actor),
    so a trial never lands in the process of one with a smaller share. No GPU on a CPU sweep."""
    from ray import tune

    def resources(config: dict):
        gpu = {"GPU": config.get("gpu_share", gpus_per_trial)} if gpus_per_trial > 0 else {}
        return tune.PlacementGroupFactory([{"CPU": cpus_per_trial, **gpu}])
    return resources


def run_lanes(lanes: list[Lane], *, storage: Path, name: str, max_concurrent: int, cpus_per_trial: float,
              gpus_per_trial: float, max_failures: int, time_budget_s: float | None = None,
              reuse_actors: bool = True, progress: Progress | None = None) -> str:
    """Run the remaining trials of every experiment in one Tune run, side by side. Returns
    "complete", "budget" (the time budget ended it: unfinished trials are recorded as stopped)
    or "interrupted"."""
    from ray import tune

    remaining = sum(lane.source.remaining() for lane in lanes)
    if remaining == 0:
        return "complete"
    progress = progress or Progress([(lane.label, lane.total) for lane in lanes])
    keepers = [Keeper(i, lane, progress) for i, lane in enumerate(lanes)]
    TrialSearcher, RungScheduler, RecordKeeper = _classes()
    # Tune creates at most num_samples trials: room for the ones sent back out of memory
    # Trials start in parallel up to the slot count: Tune 2.60 keeps at most this many pending
    # (read when the controller is built; with max_concurrent_trials its own default is that
    # number too, through the ConcurrencyLimiter it wraps the searcher in; said here, not assumed)
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max_concurrent)
    trainable = tune.with_resources(run_trial, trial_resources(cpus_per_trial, gpus_per_trial))
    run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=TrialSearcher(lanes, keepers, gpus_per_trial),
                                    scheduler=RungScheduler(lanes, keepers),
                                    num_samples=remaining * (1 + OOM_RETRIES), max_concurrent_trials=max_concurrent,
                                    time_budget_s=time_budget_s,
                                    # a trial's process goes on to the next trial: no new Python, torch
                                    # import and CUDA context per trial (2.3x the trials/min on a CPU)
                                    reuse_actors=reuse_actors),
        run_config=tune.RunConfig(name=run_name, storage_path=str(storage / SCRATCH), verbose=0,
                                  callbacks=[RecordKeeper(keepers, progress)],
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    started = time.time()
    progress.begin()
    try:
        tuner.fit()
    finally:
        progress.close()
        shutil.rmtree(storage / SCRATCH / run_name, ignore_errors=True)
    untold = [(k, t) for k in keepers for t in _untold(k)]
    if all(lane.source.remaining() == 0 for lane in lanes) and not untold:
        return "complete"
    if time_budget_s is not None and time.time() - started >= time_budget_s:
        for keeper, trial in untold:
            keeper.cut(trial, f"the time budget of {time_budget_s:g} s ran out: --resume continues it")
        return "budget"
    return "interrupted"


def _untold(keeper: Keeper) -> list[str]:
    """Trials started in this run whose end the source has not heard of."""
    folder = keeper.exp_dir / "trials"
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return [n for n in names if n not in keeper.told and record_status(keeper.exp_dir, n) == "running"]


def run_experiments(prepare, cluster, *, storage: Path, name: str, root: Path,
                    reuse_actors: bool = True, progress: Progress | None = None) -> str:
    """The one entry point: start MPS (``cluster.mps``) and Ray, call ``prepare(cluster)`` once
    the cluster is up (``cluster.max_concurrent`` is then known) for the experiments' lanes, run
    them all in one Tune run (``run_lanes``), and stop Ray and MPS, also after Ctrl-C or SIGTERM.
    ``prepare`` comes after the start so a cluster that will not start leaves nothing on disk.
    Returns "complete", "budget" or "interrupted"; raises ConfigError if Ray or MPS will not start."""
    shutil.rmtree(storage / SCRATCH, ignore_errors=True)  # Tune's files of an earlier, killed run
    with _session(cluster, root, storage):
        lanes = prepare(cluster)
        ended = run_lanes(lanes, storage=storage, name=name, max_concurrent=cluster.max_concurrent,
                          cpus_per_trial=cluster.cpus_per_trial, gpus_per_trial=cluster.gpus_per_trial,
                          max_failures=cluster.max_failures, time_budget_s=cluster.time_budget,
                          reuse_actors=reuse_actors, progress=progress)
    if (storage / SCRATCH).is_dir() and not any((storage / SCRATCH).iterdir()):
        (storage / SCRATCH).rmdir()
    return ended


@contextmanager
def _session(cluster, root: Path, storage: Path):
    """MPS (when asked), then Ray; both stopped on the way out. MPS comes first: a trial process
    joins MPS only if the daemon runs when it first initialises CUDA. On a cluster joined by
    address, every node must reach ``storage`` before anything is written there."""
    injected_faults()   # garbage in the test hook is refused before anything starts, not in every trial
    terminate_on_sigterm()
    if cluster.mps != "off" and not mps.start_mps():
        if cluster.mps == "on":
            raise ConfigError(f"--mps: {mps.last_error}")
        print(f"note: running without MPS ({mps.last_error}); --no-mps skips the attempt", file=sys.stderr)
        cluster.mps = "off"
    try:
        try:
            init_ray(cluster.address, root, dashboard=cluster.dashboard)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot start or reach Ray at {cluster.address or 'a local cluster'}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        terminate_on_sigterm()  # again: ray.init installs a handler of its own
        try:
            if cluster.address:
                nodes = check_storage_on_nodes(storage)
                print(f"seqicl sweep: every node of the Ray cluster ({nodes}) reads and writes {storage}", flush=True)
            if cluster.max_concurrent is None:
                cluster.max_concurrent = cluster.slots(cluster_resources())
            yield
        finally:
            # a local cluster's processes, trials included, end before the driver goes on
            ours = [] if cluster.address else leftovers.descendants("ray")
            shutdown_ray()
            leftovers.reap(ours, timeout=20)
    finally:
        if cluster.mps != "off":
            mps.stop_mps()


def terminate_on_sigterm() -> None:
    """SIGTERM ends the driver like Ctrl-C: Ray and MPS are stopped by the callers' ``finally``."""
    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
