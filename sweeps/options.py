"""The flags ``run.py`` and ``reseed.py`` share (packing, cluster, budget) and their checks,
into a ``Cluster`` that ``sweeps.tune_backend.run_experiments`` runs on. No Ray here."""
from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from seqicl.config import ConfigError

from . import mps

MIN_TIME_BUDGET_S = 30  # Ray and the first trials take about that long to start


@dataclass
class Cluster:
    max_concurrent: int | None  # None: every slot of the cluster, counted once Ray is up
    gpus_per_trial: float
    cpus_per_trial: float
    max_failures: int
    time_budget: float | None
    address: str | None
    mps: str                    # "on" (required), "auto" (where it helps and can start), "off"
    dashboard: bool

    def settings(self) -> dict:
        """What sweep.json records of a run (all of it may change on resume)."""
        return {"max_concurrent": self.max_concurrent, "gpus_per_trial": self.gpus_per_trial,
                "cpus_per_trial": self.cpus_per_trial, "max_failures": self.max_failures,
                "time_budget": self.time_budget, "address": self.address, "mps": self.mps}

    def slots(self, resources: dict) -> int:
        """Trials at once on a cluster with these resources (ray.cluster_resources())."""
        by_cpu = int(resources.get("CPU", 1) // self.cpus_per_trial)
        if self.gpus_per_trial > 0:
            return max(1, min(by_cpu, int(resources.get("GPU", 0) / self.gpus_per_trial + 1e-9)))
        return max(1, by_cpu)


def add_cluster_args(p) -> None:
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once, all experiments together (default: every slot, e.g. 16 per GPU)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPU fraction per trial, e.g. 0.0625 packs 16 trials on a GPU (default: 1/16 with a GPU)")
    p.add_argument("--trials-per-gpu", type=int, default=None, help="pack N trials on each GPU: --gpus-per-trial 1/N")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--address", default=None,
                   help="an existing Ray cluster (e.g. auto; default: Ray's address variable if set, "
                        "else start a local one on 127.0.0.1)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a trial that fails")
    p.add_argument("--time-budget", type=float, default=None,
                   help=f"seconds for the whole run (at least {MIN_TIME_BUDGET_S}); unfinished trials then count as stopped")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1 (needs ray[default])")
    use = p.add_mutually_exclusive_group()
    use.add_argument("--mps", dest="mps", action="store_const", const="on", default="auto",
                     help="require NVIDIA MPS (exit if it cannot start). Default: on a local cluster that packs "
                          "several trials per GPU, start nvidia-cuda-mps-control before Ray when it is there "
                          "(a daemon already running is used and left running) and stop it at the end")
    use.add_argument("--no-mps", dest="mps", action="store_const", const="off", help="never start MPS")


def resolve_cluster(args, gpu: bool, default_concurrent: int) -> Cluster:
    """Check the shared flags; raises ConfigError (one line). ``default_concurrent``: trials at
    once on a local machine without a GPU."""
    from .tune_backend import dashboard_missing, default_address
    address = args.address or default_address()
    max_concurrent = args.max_concurrent
    if max_concurrent is not None and max_concurrent < 1:
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
    if gpus > 0 and not gpu and not address:
        raise ConfigError("--gpus-per-trial asks for a GPU but this machine has none (use --address for a cluster)")
    if args.max_failures < 0:
        raise ConfigError(f"--max-failures must be 0 or more, got {args.max_failures}")
    if args.time_budget is not None and not args.time_budget >= MIN_TIME_BUDGET_S:
        raise ConfigError(f"--time-budget must be at least {MIN_TIME_BUDGET_S} seconds (starting Ray and the "
                          f"first trials takes about that long), got {args.time_budget:g}")
    if not args.cpus_per_trial > 0:
        raise ConfigError(f"--cpus-per-trial must be positive, got {args.cpus_per_trial}")
    if address:
        check_address(address)
    if args.dashboard:
        if why := dashboard_missing():
            raise ConfigError(f"--dashboard {why}")
    use_mps = getattr(args, "mps", "auto")
    if use_mps == "on":
        refuse_mps_on_a_cluster(args, address)
        if why := mps.mps_available():
            raise ConfigError(f"--mps: {why}")
    elif use_mps == "auto":
        # MPS pays off where several trials share a GPU (4.2x the steps/s with 16 on the H200)
        # and costs a little with one per GPU; a cluster's nodes start their own daemon
        packed = 0 < gpus < 1 and gpu and not address
        use_mps = "auto" if packed and mps.mps_available() is None else "off"
    per_gpu = int(1 / gpus + 1e-9) if gpus > 0 else 0
    if use_mps != "off" and per_gpu > mps.MAX_CLIENTS:  # one CUDA context per trial process
        raise ConfigError(f"{per_gpu} trials per GPU is more than MPS serves ({mps.MAX_CLIENTS} client processes "
                          f"per GPU): pass --trials-per-gpu {mps.MAX_CLIENTS} or less, or --no-mps")
    if max_concurrent is None and not address:
        if gpu:
            import torch
            from .tune_backend import fake_gpus
            gpus_here = fake_gpus() or torch.cuda.device_count()
            max_concurrent = gpus_here * max(1, per_gpu) if gpus > 0 else default_concurrent
        else:
            max_concurrent = default_concurrent
    return Cluster(max_concurrent, gpus, args.cpus_per_trial, args.max_failures, args.time_budget,
                   address, use_mps, args.dashboard)


def refuse_mps_on_a_cluster(args, address: str | None) -> None:
    if address and getattr(args, "mps", "auto") == "on":  # the daemon would run here, not on the nodes
        raise ConfigError("--mps: works with the local cluster only; with --address, start MPS on "
                          "each node before `ray start`")


def check_address(address: str) -> None:
    """Fail fast on a cluster address nothing answers at (ray.init would wait for minutes)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be auto or host:port, got '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({e.strerror or type(e).__name__})") from None


def check_writable(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` must take a new file (tried, then removed)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise OSError
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError:
        raise ConfigError(f"cannot write results under {folder} ({probe} is not a writable folder)") from None


def has_gpu(args=None) -> bool:
    """Whether the trials will have GPUs: this machine's, or with ``--address`` (or the engine's
    address variable) the cluster's, so that the same command on a head without a GPU plans the
    GPU sweep."""
    from .tune_backend import cluster_gpus, default_address
    address = args and (args.address or default_address())
    if address:  # the flags that need no cluster are checked before it is asked
        refuse_mps_on_a_cluster(args, address)
        check_address(address)
        return cluster_gpus(address) > 0
    import torch
    from .tune_backend import fake_gpus
    return torch.cuda.is_available() or fake_gpus() > 0
