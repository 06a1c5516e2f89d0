"""The training loop: plain PyTorch, no Ray. Data lives on the device as tensors; each
epoch shuffles, steps through full batches, then evaluates val and test.

``train(cfg, run_dir)`` writes the run record (``seqicl.train.record``) into ``run_dir`` and
continues from ``run_dir/state.pt`` when an earlier, unfinished run of the same config left
one there: the same weights, optimiser, schedule and data order, so a run killed at any
point and started again ends with the same numbers as one that never stopped.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..config import CHOICES
from ..data import TaskData, load_task
from ..models import build_model
from .checkpoint import atomic_save, save_checkpoint
from .metrics import BEST_POSSIBLE, evaluate
from .optim import lr_factor, make_optimizer
from .record import RecordError, RunRecord, same_training
from .stall import StallWatch
from .buckets import epoch_batches, make_buckets, steps_per_epoch as bucket_steps, supervised_lengths
from .step import make_bucketed_step, make_step
from .tensorboard import ScalarLog

# on_epoch(metrics): called after every evaluated epoch, once its line is in the record
EpochCallback = Callable[[dict], None]
STATE_FORMAT = "seqicl.train-state/2"
PRECISIONS = CHOICES["train.precision"]
DONE = ("finished", "diverged")  # a run that ended by itself; stopped or errored ones may continue
# an epoch row's timings of its attempt (seconds): setup (build_s: task data, model and optimiser on
# the device, then capture_s: the captured step; both inside setup_s), evaluations, state writes
TIMING_KEYS = ("setup_s", "build_s", "capture_s", "eval_s", "save_s")
_DATA_ON_DEVICE: dict = {}  # the last task's data on its device, for the next trial in this process


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def default_run_dir(cfg: dict) -> Path:
    return Path("runs") / f"{cfg['task']['name']}-{cfg['model']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass
class Run:
    """Everything one training run holds while it trains."""
    cfg: dict
    data: TaskData
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    step: Callable
    gen: torch.Generator
    device: torch.device
    bf16: bool
    steps_per_epoch: int
    buckets: list | None = None             # length buckets (train.length_buckets > 1), else one padded width
    epoch: int = 0                          # epochs done
    elapsed: float = 0.0                    # training seconds, summed over resumptions
    best: dict = field(default_factory=lambda: {"best_val": -1.0, "test_at_best": 0.0, "best_epoch": -1})
    # the best epoch's weights, kept on the device and written to best.pt only when the state is
    # saved (copying tensors on the GPU costs microseconds; a checkpoint file, milliseconds)
    best_weights: dict | None = None
    best_metrics: dict | None = None        # None: best.pt already holds the best epoch
    # where this attempt's wall time went (seconds): TIMING_KEYS
    timing: dict = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0.0))

    @property
    def metric(self) -> str:
        return self.cfg["task"]["metric"]

    def lr_at(self, step: int) -> float:
        o = self.cfg["optim"]
        total = self.steps_per_epoch * self.cfg["train"]["epochs"]
        return o["lr"] * lr_factor(step, total, o["warmup_frac"], o["min_lr_frac"], o.get("schedule", "cosine"),
                                   o.get("warmup_start_frac", 0.0))  # configs saved before the keys: cosine

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_run(cfg: dict) -> Run:
    """Data, model, optimiser and the (graph-captured where possible) training step."""
    tcfg = cfg["train"]
    precision = tcfg.get("precision", "fp32")  # configs saved before the key existed are fp32
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = resolve_device(cfg["device"])
    if device.type == "cuda":  # per trial: a reused worker may have run another setting before.
        # cuDNN's TF32 is on by torch's default already; matmuls' is off unless asked
        torch.backends.cuda.matmul.allow_tf32 = bool(tcfg.get("tf32", False))
    data = task_data(cfg, device)
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], len(data.vocab), data.train.inputs.shape[1]).to(device)
    use_graph = tcfg["cuda_graph"] and device.type == "cuda"
    opt = make_optimizer(model, cfg["optim"], device, capturable=use_graph)
    bs = tcfg["batch_size"]
    if not 1 <= bs <= len(data.train):
        raise ValueError(f"train.batch_size ({bs}) must be between 1 and the training set size ({len(data.train)})")
    n_buckets = tcfg.get("length_buckets", 1)  # configs saved before the key: one padded width
    if n_buckets == 1:
        buckets, steps = None, len(data.train) // bs  # full batches only: every step has one shape
    else:
        buckets = make_buckets(supervised_lengths(data.train.targets), n_buckets, bs, data.train.inputs.shape[1])
        steps = bucket_steps(buckets, bs)
    return Run(cfg, data, model, opt, None, torch.Generator().manual_seed(cfg["seed"]), device,
               precision == "bf16", steps, buckets=buckets)


def task_data(cfg: dict, device: torch.device) -> TaskData:
    """The task's data on ``device``; a process that trains trial after trial of one task (a
    reused sweep worker) keeps it there instead of reading and copying it again. Nothing writes
    into these tensors: batches and evaluations index them."""
    key = (repr(sorted(cfg["task"].items())), cfg["data"]["cache_dir"], str(device))
    if key not in _DATA_ON_DEVICE:
        _DATA_ON_DEVICE.clear()  # one task at a time: a worker that moves on frees the last one
        _DATA_ON_DEVICE[key] = load_task(cfg["task"], cfg["data"]["cache_dir"]).to(device)
    return _DATA_ON_DEVICE[key]


def capture_step(run: Run) -> None:
    train, tcfg = run.data.train, run.cfg["train"]
    use_graph = tcfg["cuda_graph"] and run.device.type == "cuda"
    if run.buckets is None:
        run.step, eager_reason = make_step(run.model, run.opt, tcfg["grad_clip"], train.inputs, train.targets,
                                           use_graph, bf16=run.bf16, batch_size=tcfg["batch_size"])
    else:
        run.step, eager_reason = make_bucketed_step(run.model, run.opt, tcfg["grad_clip"], train.inputs,
                                                    train.targets, [b.length for b in run.buckets], use_graph,
                                                    bf16=run.bf16, batch_size=tcfg["batch_size"])
    if eager_reason:
        print(f"seqicl: training step not graph-captured, running eagerly ({eager_reason})")


def save_state(run: Run, path: Path) -> None:
    atomic_save({"format": STATE_FORMAT, "epoch": run.epoch, "elapsed": run.elapsed, "model": run.model.state_dict(),
                 "optimizer": run.opt.state_dict(), "generator": run.gen.get_state(), "best": run.best}, path)


def load_state(run: Run, path: Path) -> None:
    try:
        # on the CPU: the generator's state must stay a CPU ByteTensor; load_state_dict moves the rest
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RecordError(f"{path}: not a readable training state ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise RecordError(f"{path}: not a seqicl training state")
    run.model.load_state_dict(state["model"])
    # a capturable optimizer's learning rate is a device tensor that the captured step reads;
    # load_state_dict would replace it by the saved (CPU) one, so keep ours and copy the value in
    lrs = [g["lr"] for g in run.opt.param_groups]
    run.opt.load_state_dict(state["optimizer"])
    for group, lr in zip(run.opt.param_groups, lrs):
        if isinstance(lr, torch.Tensor):
            lr.copy_(torch.as_tensor(group["lr"]))
            group["lr"] = lr
    run.gen.set_state(state["generator"])
    run.epoch, run.elapsed, run.best = state["epoch"], state["elapsed"], dict(state["best"])


def train_epoch(run: Run) -> float:
    """One pass over the shuffled training set in full batches; returns the mean loss (one host
    sync)."""
    run.model.train()
    bs, steps = run.cfg["train"]["batch_size"], run.steps_per_epoch
    lrs = [run.lr_at(run.epoch * steps + i) for i in range(steps)]
    if run.buckets is None:
        perm = torch.randperm(len(run.data.train), generator=run.gen).to(run.device)
        loss_sum = run.step.epoch(run.data.train.inputs, run.data.train.targets, perm[:steps * bs].view(steps, bs), lrs)
    else:
        loss_sum = run.step.epoch_batches(epoch_batches(run.buckets, bs, run.gen), lrs, run.device)
    run.epoch += 1
    return float(loss_sum) / steps


def evaluate_epoch(run: Run, train_loss: float) -> tuple[dict, bool]:
    """Val and test metrics of the current weights, the best-so-far fields; (metrics, improved)."""
    metrics = {"epoch": run.epoch, "train_loss": train_loss, "lr": run.lr_at(run.epoch * run.steps_per_epoch - 1)}
    for split in ("val", "test"):
        for k, v in evaluate(run.model, getattr(run.data, split), bf16=run.bf16).items():
            metrics[f"{split}_{k}"] = v
    improved = metrics[f"val_{run.metric}"] > run.best["best_val"]
    if improved:
        run.best = {"best_val": metrics[f"val_{run.metric}"], "test_at_best": metrics[f"test_{run.metric}"],
                    "best_epoch": run.epoch}
        # every test metric at the chosen epoch (RegBench reports tvd beside dfa_accuracy)
        run.best.update({f"{k}_at_best": v for k, v in metrics.items() if k.startswith("test_")})
        keep_best_weights(run)
    return {**metrics, **run.best}, improved


def keep_best_weights(run: Run) -> None:
    weights = run.model.state_dict()
    if run.best_weights is None:
        run.best_weights = {k: v.detach().clone() for k, v in weights.items()}
    else:
        torch._foreach_copy_(list(run.best_weights.values()), [v.detach() for v in weights.values()])


def save_best_and_state(run: Run, record: RunRecord, log, last: bool) -> None:
    """best.pt (when a new best came since the last save), then the training state (unless the
    run is over), in that order: a state never runs ahead of best.pt."""
    if run.best_metrics is not None and run.cfg["train"]["checkpoint"]:
        save_checkpoint(record.dir / "best.pt", run.best_weights, run.cfg, run.data.vocab,
                        run.data.train.inputs.shape[1], run.best["best_epoch"], run.best_metrics)
        run.best_metrics = None
    record.sync()
    log.flush()
    if not last and run.cfg["train"]["checkpoint"]:
        save_state(run, record.dir / "state.pt")
        record.set_status("running", epochs=run.epoch)


def summary_of(record: RunRecord, status: dict) -> dict:
    """The summary ``train`` returns, rebuilt from a record (a run that is already over)."""
    rows = record.epochs()
    last = rows[-1] if rows else {}
    run = record.run()
    return {"best_val": last.get("best_val", -1.0), "test_at_best": last.get("test_at_best", 0.0),
            "best_epoch": last.get("best_epoch", -1), "status": status["status"], "reason": status.get("reason"),
            "epochs": status.get("epochs", 0), "metric": run["config"]["task"]["metric"],
            "params": run.get("n_params"), "run_dir": str(record.dir)}


def open_record(cfg: dict, run: Run, run_dir: Path, meta: dict | None) -> tuple[RunRecord, bool]:
    """Start the record of a fresh run, or continue the one in ``run_dir``; (record, resumed)."""
    record = RunRecord(run_dir)
    state = run_dir / "state.pt"
    if record.exists() and state.is_file():  # the config was checked against run.json by train()
        load_state(run, state)
        if record.run()["config"] != cfg:  # bookkeeping only (same_training): record what runs now
            record.note(config=cfg)
        record.truncate(run.epoch)
        record.set_status("running", epochs=run.epoch)
        return record, True
    # a fresh start (a first run, or one killed before its first state): nothing of an earlier
    # attempt may stay beside the new record
    shutil.rmtree(run_dir / "tb", ignore_errors=True)
    (run_dir / "best.pt").unlink(missing_ok=True)
    record.start(cfg, run.data.info, run.n_params(), str(run.device), meta)
    return record, False


def is_out_of_memory(e: BaseException) -> bool:
    """A failure to get GPU memory: torch's OutOfMemoryError, or cuBLAS failing to allocate its
    handle's workspace (the same cause, another message)."""
    return isinstance(e, torch.cuda.OutOfMemoryError) or any(
        m in str(e) for m in ("CUDA out of memory", "CUBLAS_STATUS_ALLOC_FAILED"))


def train(cfg: dict, run_dir: str | Path | None = None, on_epoch: EpochCallback | None = None,
          meta: dict | None = None, save_at=()) -> dict:
    """Train one model on one task as ``cfg`` says; returns a summary of the best epoch.

    Metrics per evaluation: ``train_loss``, ``lr``, ``{val,test}_{loss,accuracy[,dfa_accuracy,tvd]}``,
    ``best_val`` (best so far of ``val_<task.metric>``: comparable across budgets, which is
    what early stopping needs), ``test_at_best`` (test metric at that epoch), ``best_epoch``,
    ``time_total_s`` (training seconds so far) and ``timestamp``. A NaN or infinite training
    loss ends the run with status "diverged". A run already over in ``run_dir`` is not
    trained again: its summary is returned; a stopped or errored one continues from its state.
    ``meta`` adds fields to ``run.json``. The training state (and ``best.pt``, when a better
    epoch came since) is saved at the epochs in ``save_at`` (a sweep passes ASHA's rungs, where
    its trials may be stopped), every ``train.state_every`` epochs, and at the end.
    """
    tcfg = cfg["train"]
    run_dir = Path(run_dir or tcfg.get("run_dir") or default_run_dir(cfg))
    record = RunRecord(run_dir)
    if record.exists():
        if not same_training(record.run()["config"], cfg):
            raise RecordError(f"{run_dir} holds a run of another config: choose another run directory")
        if (status := record.status())["status"] in DONE:
            return summary_of(record, status)
    setup_started = time.time()
    with StallWatch(run_dir) as watch:
        watch.phase("building the task data, model and optimiser")
        run = build_run(cfg)
        run.timing["build_s"] = time.time() - setup_started
        record, resumed = open_record(cfg, run, run_dir, meta)
        try:
            return train_epochs(run, record, resumed, on_epoch, frozenset(save_at), setup_started, watch)
        except Exception as e:  # the reason stays in the record; Ray's stop (SystemExit) is not an error
            if is_out_of_memory(e):  # not the run's fault: it stays "running" at its last state, to go on
                raise                # once its GPU has room (a sweep starts it again beside fewer trials)
            record.set_status("errored", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
            raise


def train_epochs(run: Run, record: RunRecord, resumed: bool, on_epoch: EpochCallback | None,
                 save_at: frozenset[int] = frozenset(), setup_started: float | None = None,
                 watch: StallWatch | None = None) -> dict:
    tcfg = run.cfg["train"]
    phase = watch.phase if watch is not None else (lambda name: None)
    phase("capturing the training step")
    capturing = time.time()
    capture_step(run)
    run.timing["capture_s"] = time.time() - capturing
    run.timing["setup_s"] = time.time() - (setup_started or capturing)
    log = ScalarLog(record.dir / "tb", purge_step=run.epoch + 1 if resumed else None)  # drop repeated steps
    bar = tqdm(range(run.epoch, tcfg["epochs"]), disable=not tcfg["progress"], unit="ep", dynamic_ncols=True,
               desc=f"{run.cfg['task']['name']}/{run.cfg['model']['name']}", initial=run.epoch, total=tcfg["epochs"])
    status, reason = "finished", None
    try:
        for _ in bar:
            if tcfg.get("stop_when_perfect") and run.best["best_val"] >= BEST_POSSIBLE.get(run.metric, math.inf):
                # the best epoch is the first at the maximum ("improved" needs a higher value), so
                # the summary and best.pt are final: the rest of the schedule would change nothing.
                # Checked before each epoch: a run resumed from a state saved at that epoch ends too.
                reason = (f"validation {run.metric} reached its maximum at epoch {run.best['best_epoch']} "
                          f"(of {tcfg['epochs']})")
                break
            started = time.time()
            phase(f"epoch {run.epoch + 1}: training")
            train_loss = train_epoch(run)
            if not math.isfinite(train_loss):
                status, reason = "diverged", f"training loss became {train_loss} at epoch {run.epoch}"
                break
            last = run.epoch == tcfg["epochs"]
            # the state is saved at the caller's epochs (a sweep's rungs, where a trial may be
            # stopped) and every state_every epochs; a resumed run repeats at most the epochs since
            save = last or run.epoch in save_at or bool(tcfg["state_every"] and run.epoch % tcfg["state_every"] == 0)
            if run.epoch % tcfg["eval_every"] and not save:
                run.elapsed += time.time() - started
                continue
            evaluated = time.time()
            phase(f"epoch {run.epoch}: evaluation")
            metrics, improved = evaluate_epoch(run, train_loss)
            run.elapsed += time.time() - started
            run.timing["eval_s"] += time.time() - evaluated
            metrics.update(time_total_s=run.elapsed, timestamp=time.time(), **run.timing)
            if improved:
                run.best_metrics = metrics
            record.append_epoch(metrics)
            log.epoch(run.epoch, metrics)
            if save:
                phase(f"epoch {run.epoch}: saving")
                saving = time.time()
                save_best_and_state(run, record, log, last)
                run.timing["save_s"] += time.time() - saving
            bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{metrics[f'val_{run.metric}']:.3f}",
                            test=f"{metrics[f'test_{run.metric}']:.3f}")
            if on_epoch is not None:
                phase(f"epoch {run.epoch}: the caller's report (a sweep's trial reports to Ray)")
                on_epoch(metrics)
    except BaseException:  # stopped (Ray's stop is a SystemExit from on_epoch) or failed: the events
        log.close()        # so far are on disk and the writer's thread ends with the trial, even in a reused process
        bar.close()
        raise
    phase("ending: the last saves")
    if status == "diverged" or run.epoch < tcfg["epochs"]:  # ended before its last epoch's save
        save_best_and_state(run, record, log, last=True)
    record.set_status(status, reason, epochs=run.epoch)
    (record.dir / "state.pt").unlink(missing_ok=True)  # the run is over: nothing left to resume
    log.close(run.cfg, {k: float(v) for k, v in run.best.items()})
    return {**run.best, "status": status, "reason": reason, "epochs": run.epoch, "metric": run.metric,
            "params": run.n_params(), "time_total_s": run.elapsed, "run_dir": str(record.dir)}
