"""The training loop: plain PyTorch, no Ray. Data lives on the device as tensors; each
epoch shuffles, steps through full batches, then evaluates val and test once."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..atomic import atomic_write_text
from ..config import CHOICES
from ..data import load_task
from ..models import build_model
from .checkpoint import atomic_save, save_checkpoint
from .metrics import evaluate
from .optim import lr_factor, make_optimizer, set_lr
from .step import make_step
from .tensorboard import ScalarLog

# on_epoch(metrics, save): called after every evaluation. ``save`` is None, or, when a checkpoint
# is due (a new best, every ``train.state_every`` epochs, the end), a function that writes
# ``state.pt`` (everything needed to resume) and ``best.pt`` into a given folder.
EpochCallback = Callable[[dict, "Callable[[Path], None] | None"], None]
STATE_FORMAT = "seqicl.train-state/1"
PRECISIONS = CHOICES["train.precision"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def default_run_dir(cfg: dict) -> Path:
    return Path("runs") / f"{cfg['task']['name']}-{cfg['model']['name']}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: dict, on_epoch: EpochCallback | None = None, run_dir: str | Path | None = None,
          resume: dict | None = None) -> dict:
    """Train one model on one task as ``cfg`` says; returns a summary of the best epoch.

    Metrics per evaluation: ``train_loss``, ``lr``, ``{val,test}_{loss,accuracy[,dfa_accuracy,tvd]}``,
    ``best_val`` (best so far of ``val_<task.metric>``: comparable across budgets, which is
    what early stopping needs), ``test_at_best`` (test metric at that epoch), ``best_epoch``.
    ``resume`` is a ``state.pt`` dict written by an earlier run of the same config: training
    continues after its epoch with the same weights, optimiser, schedule and data order.
    A NaN or infinite training loss ends the run with ``status = "diverged"`` in the summary
    (and a last ``on_epoch`` call whose metrics carry ``diverged = 1``).
    """
    tcfg, ocfg = cfg["train"], cfg["optim"]
    precision = tcfg.get("precision", "fp32")  # configs saved before the key existed are fp32
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    bf16 = precision == "bf16"
    device = resolve_device(cfg["device"])
    run_dir = Path(run_dir or tcfg.get("run_dir") or default_run_dir(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    metric = cfg["task"]["metric"]

    data = load_task(cfg["task"], cfg["data"]["cache_dir"]).to(device)
    torch.manual_seed(cfg["seed"])
    max_len = data.train.inputs.shape[1]
    model = build_model(cfg["model"], len(data.vocab), max_len).to(device)
    if resume is None:
        atomic_write_text(run_dir / "run.json", json.dumps(
            {"config": cfg, "task_info": data.info, "params": sum(p.numel() for p in model.parameters()),
             "device": str(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    use_graph = tcfg["cuda_graph"] and device.type == "cuda"
    opt = make_optimizer(model, ocfg, device, capturable=use_graph)
    bs, n = tcfg["batch_size"], len(data.train)
    steps_per_epoch = max(1, n // bs)  # full batches only: every step has the same shape
    total_steps = steps_per_epoch * tcfg["epochs"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    best = {"best_val": -1.0, "test_at_best": 0.0, "best_epoch": -1}
    first_epoch = 0
    if resume is not None:
        if resume.get("format") != STATE_FORMAT:
            raise ValueError("not a seqicl training state")
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        best, first_epoch = dict(resume["best"]), resume["epoch"]
    step_fn, eager_reason = make_step(model, opt, tcfg["grad_clip"], data.train.inputs[:bs],
                                      data.train.targets[:bs], use_graph, bf16=bf16)
    if eager_reason:
        print(f"seqicl: training step not graph-captured, running eagerly ({eager_reason})")
    log = ScalarLog(run_dir / "tb")

    def lr_at(step: int) -> float:
        return ocfg["lr"] * lr_factor(step, total_steps, ocfg["warmup_frac"], ocfg["min_lr_frac"])

    def save(folder: Path, epoch: int) -> None:
        atomic_save({"format": STATE_FORMAT, "epoch": epoch, "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "generator": gen.get_state(), "best": best},
                    Path(folder) / "state.pt")
        if (run_dir / "best.pt").is_file() and Path(folder) != run_dir:
            shutil.copy2(run_dir / "best.pt", Path(folder) / "best.pt")

    bar = tqdm(range(first_epoch, tcfg["epochs"]), disable=not tcfg["progress"], unit="ep", dynamic_ncols=True,
               desc=f"{cfg['task']['name']}/{cfg['model']['name']}", initial=first_epoch, total=tcfg["epochs"])
    start = time.time()
    metrics: dict = {}
    status = "finished"
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            idx = perm[i * bs: (i + 1) * bs]
            set_lr(opt, lr_at(epoch * steps_per_epoch + i))
            loss_sum += step_fn(data.train.inputs[idx], data.train.targets[idx])
        train_loss = float(loss_sum) / steps_per_epoch  # one host sync per epoch
        if not math.isfinite(train_loss):
            status = "diverged"
            metrics = {"epoch": epoch + 1, "train_loss": train_loss, "diverged": 1, **best,
                       "time_total_s": time.time() - start}
            if on_epoch is not None:
                on_epoch(metrics, None)
            break
        last = epoch + 1 == tcfg["epochs"]
        if (epoch + 1) % tcfg["eval_every"] and not last:
            continue
        metrics = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr_at((epoch + 1) * steps_per_epoch - 1)}
        for split in ("val", "test"):
            for k, v in evaluate(model, getattr(data, split), bf16=bf16).items():
                metrics[f"{split}_{k}"] = v
        improved = metrics[f"val_{metric}"] > best["best_val"]
        if improved:
            best = {"best_val": metrics[f"val_{metric}"], "test_at_best": metrics[f"test_{metric}"],
                    "best_epoch": epoch + 1}
            # every test metric at the chosen epoch (RegBench reports tvd beside dfa_accuracy)
            best.update({f"{k}_at_best": v for k, v in metrics.items() if k.startswith("test_")})
        metrics.update(best, time_total_s=time.time() - start)
        if improved and tcfg["checkpoint"]:
            save_checkpoint(run_dir / "best.pt", model, cfg, data.vocab, max_len, epoch + 1, metrics)
        log.epoch(epoch + 1, metrics)
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", val=f"{metrics[f'val_{metric}']:.3f}",
                        test=f"{metrics[f'test_{metric}']:.3f}")
        due = improved or last or (epoch + 1) % tcfg["state_every"] == 0
        if on_epoch is not None:
            on_epoch(metrics, (lambda folder, e=epoch + 1: save(folder, e)) if due and tcfg["checkpoint"] else None)
    summary = {**best, "status": status, "final_val": metrics.get(f"val_{metric}", 0.0), "metric": metric,
               "params": sum(p.numel() for p in model.parameters()), "time_total_s": time.time() - start,
               "run_dir": str(run_dir)}
    log.close(cfg, {k: float(v) for k, v in best.items()})
    return summary
